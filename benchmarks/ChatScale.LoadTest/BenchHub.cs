using Microsoft.AspNetCore.SignalR;

namespace ChatScale.LoadTest;

/// <summary>The SignalR side's hub: clients only receive; messages are sent through <c>IHubContext</c>.</summary>
internal sealed class BenchHub : Hub;
