using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Telemetry;

/// <summary>Which way telemetry reaches the broker (edge.json <c>mqtt.via</c>).</summary>
internal enum TelemetryRoute
{
    /// <summary>Straight to <c>mqtt.url</c>; when that fails and the uplink is up, through the uplink.</summary>
    Auto,

    /// <summary>Only straight to <c>mqtt.url</c>.</summary>
    Direct,

    /// <summary>Only through the uplink, to the broker the relay ingests from.</summary>
    Uplink,
}

/// <summary>Opens byte streams through the uplink to the relay's <c>mqtt</c> service (the uplink client, or a test's fake).</summary>
internal interface IRelayStreamOpener
{
    /// <summary>True while a connected relay takes such streams.</summary>
    bool RelayServicesAvailable { get; }

    /// <summary>Opens a stream to the relay's service; throws when it cannot.</summary>
    Task<TunnelStream> OpenRelayStreamAsync(string service, CancellationToken cancellationToken);
}

/// <summary>
/// Carries the MQTT session through the uplink when it cannot reach the broker itself (a proxy that strips
/// <c>Upgrade</c> lets no MQTT-over-WebSocket through, while the uplink falls back to HTTP): the device opens a
/// stream to the relay's <c>mqtt</c> service (the broker the relay ingests from, docs/uplink-protocol.md, tunnel
/// channel) and the same MQTT client connects to a loopback listener that forwards into that stream, so the
/// session's rules (outbox, PUBACK, will, keep alive) stay exactly as they are. In <see cref="TelemetryRoute.Auto"/>
/// every connect tries the broker first, so telemetry goes back to the direct route as soon as the network allows.
/// </summary>
internal sealed partial class UplinkMqttConnector(ITelemetryMqttConnector inner, IRelayStreamOpener uplink, TelemetryRoute route,
    TelemetryCounters counters, ILogger logger) : ITelemetryMqttConnector
{
    /// <summary>The relay service name of the broker.</summary>
    public const string Service = "mqtt";

    /// <summary>How long the direct attempt may take in <see cref="TelemetryRoute.Auto"/> before the uplink is tried.</summary>
    internal TimeSpan DirectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    public async Task<ITelemetryMqttConnection> ConnectAsync(TelemetryConnectOptions options, Func<TelemetryInboundMessage, Task> onMessage, CancellationToken cancellationToken)
    {
        if (route == TelemetryRoute.Uplink) return await ConnectThroughUplinkAsync(options, onMessage, cancellationToken).ConfigureAwait(false);
        if (route == TelemetryRoute.Direct) return Direct(await inner.ConnectAsync(options, onMessage, cancellationToken).ConfigureAwait(false));
        try
        {
            using var direct = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // Only cut the direct attempt short when there is somewhere else to go: a slow broker on a slow link may
            // need the session's whole connect timeout.
            if (uplink.RelayServicesAvailable) direct.CancelAfter(DirectTimeout);
            return Direct(await inner.ConnectAsync(options, onMessage, direct.Token).ConfigureAwait(false));
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested && uplink.RelayServicesAvailable)
        {
            LogFallingBack(logger, e.GetBaseException().Message);
            return await ConnectThroughUplinkAsync(options, onMessage, cancellationToken).ConfigureAwait(false);
        }
    }

    private ITelemetryMqttConnection Direct(ITelemetryMqttConnection connection)
    {
        counters.SetRoute(TelemetryRoutes.Direct);
        return connection;
    }

    private async Task<ITelemetryMqttConnection> ConnectThroughUplinkAsync(TelemetryConnectOptions options, Func<TelemetryInboundMessage, Task> onMessage, CancellationToken cancellationToken)
    {
        var stream = await uplink.OpenRelayStreamAsync(Service, cancellationToken).ConfigureAwait(false);
        var listener = new TcpListener(IPAddress.Loopback, 0);
        Task? bridge = null;
        try
        {
            listener.Start(1);
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            // Exactly one connection is taken: the MQTT client's. The listener closes as soon as it arrived.
            var accepting = listener.AcceptSocketAsync(cancellationToken).AsTask();
            bridge = BridgeAsync(accepting, listener, stream);
            var local = options with { Url = new Uri($"mqtt://127.0.0.1:{port}"), TrustedCaPath = null };
            var connection = await inner.ConnectAsync(local, onMessage, cancellationToken).ConfigureAwait(false);
            counters.SetRoute(TelemetryRoutes.Uplink);
            LogThroughUplink(logger);
            return new ThroughUplink(connection, stream, bridge);
        }
        catch
        {
            listener.Stop();
            stream.Dispose();
            if (bridge is not null) await bridge.ConfigureAwait(false);
            throw;
        }
    }

    private static async Task BridgeAsync(Task<Socket> accepting, TcpListener listener, TunnelStream stream)
    {
        Socket socket;
        try
        {
            socket = await accepting.ConfigureAwait(false);
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            stream.Reset(TunnelResetCode.Cancelled, "the MQTT client did not connect");
            return;
        }
        finally
        {
            listener.Stop();
        }
        using (socket)
        {
            socket.NoDelay = true;
            await TunnelBridge.RunAsync(socket, stream).ConfigureAwait(false);
        }
    }

    // The MQTT connection over the loopback bridge; disposing it also ends the stream through the uplink.
    private sealed class ThroughUplink(ITelemetryMqttConnection inner, TunnelStream stream, Task bridge) : ITelemetryMqttConnection
    {
        public Task Closed => inner.Closed;

        public string Route => TelemetryRoutes.Uplink;

        public Task PublishAsync(string topic, ReadOnlyMemory<byte> payload, bool retain, CancellationToken cancellationToken) =>
            inner.PublishAsync(topic, payload, retain, cancellationToken);

        public Task SubscribeAsync(string topic, CancellationToken cancellationToken) => inner.SubscribeAsync(topic, cancellationToken);

        public Task DisconnectAsync(CancellationToken cancellationToken) => inner.DisconnectAsync(cancellationToken);

        public async ValueTask DisposeAsync()
        {
            await inner.DisposeAsync().ConfigureAwait(false);
            stream.Dispose();
            await bridge.ConfigureAwait(false);
        }
    }

    [LoggerMessage(1, LogLevel.Warning, "MQTT: the broker cannot be reached directly ({Reason}); carrying MQTT through the uplink to the relay's broker")]
    private static partial void LogFallingBack(ILogger logger, string reason);

    [LoggerMessage(2, LogLevel.Information, "MQTT: connected to the broker through the uplink")]
    private static partial void LogThroughUplink(ILogger logger);
}

/// <summary>The route names in metrics and status.</summary>
internal static class TelemetryRoutes
{
    public const string Direct = "direct";
    public const string Uplink = "uplink";
}
