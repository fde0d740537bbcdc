using ChatScale.Samples.Chat.Store;

namespace ChatScale.Samples.Chat.Tests.Store;

public sealed class InMemoryChatStoreContractTests : ChatStoreContract
{
    protected override bool LeavesNoHoles => true;

    protected override Task<IChatStore> CreateStoreAsync() => Task.FromResult<IChatStore>(new InMemoryChatStore());
}
