using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>
/// A TCP proxy on a free loopback port in front of a target port, standing in for a bad network:
/// it can throttle the upstream direction (client to target) and blackhole the connections it
/// carries (stop forwarding both ways while keeping the sockets open, like a dead NAT mapping).
/// </summary>
internal sealed class TcpTestProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Pair> _pairs = [];
    private readonly int _targetPort;
    private readonly Task _accept;

    public TcpTestProxy(int targetPort, long upstreamBytesPerSecond = 0, long downstreamBytesPerSecond = 0)
    {
        _targetPort = targetPort;
        UpstreamBytesPerSecond = upstreamBytesPerSecond;
        DownstreamBytesPerSecond = downstreamBytesPerSecond;
        _listener.Start();
        _accept = AcceptLoopAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;
    public long UpstreamBytesPerSecond { get; }
    public long DownstreamBytesPerSecond { get; }
    public int ConnectionCount { get { lock (_pairs) return _pairs.Count; } }

    /// <summary>Every connection open now is closed at once (both sides see a reset); new connections work.</summary>
    public void DropExisting()
    {
        lock (_pairs)
        {
            foreach (var p in _pairs)
            {
                p.Client.LingerState = new LingerOption(true, 0);
                p.Upstream.LingerState = new LingerOption(true, 0);
                p.Client.Dispose();
                p.Upstream.Dispose();
            }
            _pairs.Clear();
        }
    }

    /// <summary>Every connection open now stops forwarding; new connections work.</summary>
    public void BlackholeExisting()
    {
        lock (_pairs)
            foreach (var p in _pairs) p.Blackholed = true;
    }

    private async Task AcceptLoopAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_cts.Token);
                var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                if (UpstreamBytesPerSecond > 0)
                {
                    // Keep the proxy's own buffers small so the throttle is what the sender feels.
                    client.ReceiveBufferSize = 16 * 1024;
                    upstream.SendBufferSize = 16 * 1024;
                }
                try
                {
                    await upstream.ConnectAsync(IPAddress.Loopback, _targetPort, _cts.Token);
                }
                catch (SocketException)
                {
                    client.Dispose();
                    upstream.Dispose();
                    continue;
                }
                var pair = new Pair(client, upstream);
                lock (_pairs) _pairs.Add(pair);
                pair.Pumps = Task.WhenAll(PumpAsync(pair, client, upstream, UpstreamBytesPerSecond), PumpAsync(pair, upstream, client, DownstreamBytesPerSecond));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task PumpAsync(Pair pair, Socket from, Socket to, long bytesPerSecond)
    {
        var buffer = new byte[bytesPerSecond > 0 ? 4096 : 65536];
        var clock = Stopwatch.StartNew();
        long forwarded = 0;
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None, _cts.Token);
                if (n == 0 || pair.Blackholed) break;
                if (bytesPerSecond > 0)
                {
                    forwarded += n;
                    var due = TimeSpan.FromSeconds((double)forwarded / bytesPerSecond) - clock.Elapsed;
                    if (due > TimeSpan.Zero) await Task.Delay(due, _cts.Token);
                }
                if (pair.Blackholed) break;
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _cts.Token);
            }
            if (!pair.Blackholed) to.Shutdown(SocketShutdown.Send);
            else await Task.Delay(Timeout.Infinite, _cts.Token); // hold the sockets open, forward nothing
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        await _accept;
        Pair[] pairs;
        lock (_pairs) pairs = [.. _pairs];
        foreach (var p in pairs)
        {
            p.Client.Dispose();
            p.Upstream.Dispose();
        }
        await Task.WhenAll(pairs.Select(p => p.Pumps ?? Task.CompletedTask));
        _cts.Dispose();
    }

    private sealed class Pair(Socket client, Socket upstream)
    {
        public Socket Client { get; } = client;
        public Socket Upstream { get; } = upstream;
        public volatile bool Blackholed;
        public Task? Pumps;
    }
}
