using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>
/// A reverse proxy on loopback (port 0) in front of a relay that swallows WebSocket upgrades, as some middleboxes do:
/// a request carrying <c>Upgrade</c> is read and then held, never answered and never forwarded, until the client gives
/// up. Every other request (the HTTP fallback's GET and POST) is forwarded to the relay and its bytes pumped both ways.
/// </summary>
internal sealed class UpgradeHoldingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Task> _tasks = [];
    private readonly List<Socket> _sockets = [];
    private readonly int _backendPort;
    private readonly Task _accept;
    private int _held, _forwarded;

    public UpgradeHoldingProxy(int backendPort)
    {
        _backendPort = backendPort;
        _listener.Start();
        _accept = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Upgrade requests held unanswered so far.</summary>
    public int Held => Volatile.Read(ref _held);

    /// <summary>Plain requests forwarded to the relay so far.</summary>
    public int Forwarded => Volatile.Read(ref _forwarded);

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_cts.Token);
                lock (_sockets) { _sockets.Add(client); _tasks.Add(HandleAsync(client)); }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task HandleAsync(Socket client)
    {
        try
        {
            var head = new List<byte>();
            var one = new byte[1];
            while (head.Count < 16384 && !(head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
            {
                if (await client.ReceiveAsync(one, SocketFlags.None, _cts.Token) == 0) return;
                head.Add(one[0]);
            }
            var text = Encoding.ASCII.GetString([.. head]);
            if (text.Split("\r\n").Any(l => l.StartsWith("Upgrade:", StringComparison.OrdinalIgnoreCase)))
            {
                Interlocked.Increment(ref _held);
                // Held: read (and drop) whatever else comes until the client closes.
                var sink = new byte[1024];
                while (await client.ReceiveAsync(sink, SocketFlags.None, _cts.Token) > 0) { }
                return;
            }
            Interlocked.Increment(ref _forwarded);
            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            lock (_sockets) _sockets.Add(upstream);
            await upstream.ConnectAsync(IPAddress.Loopback, _backendPort, _cts.Token);
            await upstream.SendAsync(head.ToArray(), SocketFlags.None, _cts.Token);
            await Task.WhenAny(PumpAsync(client, upstream), PumpAsync(upstream, client));
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            client.Dispose();
        }
    }

    private async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16384];
        while (true)
        {
            var n = await from.ReceiveAsync(buffer, SocketFlags.None, _cts.Token);
            if (n == 0) return;
            await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _cts.Token);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _listener.Stop();
        await _accept;
        Task[] tasks;
        lock (_sockets)
        {
            foreach (var s in _sockets) s.Dispose();
            tasks = [.. _tasks];
        }
        await Task.WhenAll(tasks);
        _cts.Dispose();
    }
}
