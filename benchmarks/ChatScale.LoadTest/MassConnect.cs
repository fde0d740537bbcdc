namespace ChatScale.LoadTest;

internal static class MassConnect
{
    public static Task<int> RunAsync(Args args) => Task.FromResult(args.Has("x") ? 0 : 1);
}
