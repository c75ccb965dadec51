using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>Several users of the data channel (configuration, updates) behind the client's one handler: every call goes to each in order; each ignores messages it does not know.</summary>
public sealed class UplinkDataHandlers(params IUplinkDataHandler[] handlers) : IUplinkDataHandler
{
    /// <summary>The handlers, in call order.</summary>
    public IReadOnlyList<IUplinkDataHandler> Handlers { get; } = handlers;

    /// <inheritdoc />
    public void OnConnected(Uri relay, Func<UplinkMessage, bool>? send)
    {
        foreach (var h in Handlers) h.OnConnected(relay, send);
    }

    /// <inheritdoc />
    public void OnMessage(UplinkMessage message)
    {
        foreach (var h in Handlers) h.OnMessage(message);
    }

    /// <inheritdoc />
    public void OnDisconnected()
    {
        foreach (var h in Handlers) h.OnDisconnected();
    }
}

/// <summary>A hosted service that does nothing (a feature switched off by configuration).</summary>
internal sealed class NothingHostedService : Microsoft.Extensions.Hosting.IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
