using System.Net.WebSockets;
using System.Threading.Channels;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>
/// A hand-written device on the uplink (the wire messages an edge sends; the real edge's update path is
/// covered by Integration.Tests' UpdateTests): it answers pings and hands every other message to the test.
/// </summary>
internal sealed class FakeDevice : IAsyncDisposable
{
    private readonly UplinkWebSocket _link;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;

    private FakeDevice(UplinkWebSocket link)
    {
        _link = link;
        _pump = Task.Run(PumpAsync);
    }

    public Channel<UplinkMessage> Received { get; } = Channel.CreateUnbounded<UplinkMessage>();

    public static async Task<FakeDevice> ConnectAsync(Uri uplink, string id, string token, string agent)
    {
        var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader(UplinkProtocol.DeviceHeader, id);
        ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await ws.ConnectAsync(uplink, cts.Token);
        var link = new UplinkWebSocket(ws);
        await link.SendAsync(new Hello(1, 1, UplinkCapabilities.Media | UplinkCapabilities.Data | UplinkCapabilities.Updates, agent), cts.Token);
        var welcome = Assert.IsType<Welcome>(await link.ReceiveAsync(cts.Token));
        Assert.True(welcome.Capabilities.HasFlag(UplinkCapabilities.Updates), "the relay did not confirm the update capability");
        return new FakeDevice(link);
    }

    public Task SendAsync(UplinkMessage message) => _link.SendAsync(message, _stop.Token).AsTask();

    public async Task<T> NextAsync<T>(TimeSpan timeout) where T : UplinkMessage
    {
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            var m = await Received.Reader.ReadAsync(cts.Token);
            if (m is T t) return t;
        }
    }

    private async Task PumpAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var m = await _link.ReceiveAsync(_stop.Token);
                if (m is null) break; // the relay closed the session
                if (m is Ping ping) await _link.SendAsync(new Pong(ping.Timestamp), _stop.Token);
                else if (m is not (Pong or Ack)) Received.Writer.TryWrite(m);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or WebSocketException or UplinkProtocolException or ObjectDisposedException)
        {
            // The test ended the session, or the relay did (the test then times out on what it waited for).
        }
        finally
        {
            Received.Writer.TryComplete();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _pump;
        await _link.DisposeAsync();
        _stop.Dispose();
    }
}
