using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>A minimal HTTP CONNECT proxy on a free loopback port (what a corporate proxy does for wss://).</summary>
internal sealed class ConnectProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Task> _tasks = [];
    private readonly List<Socket> _sockets = [];
    private readonly Task _accept;

    public ConnectProxy()
    {
        _listener.Start();
        _accept = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>The request lines seen, e.g. <c>CONNECT 127.0.0.1:5000 HTTP/1.1</c>.</summary>
    public List<string> Requests { get; } = [];

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
            while (head.Count < 8192 && !(head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
            {
                if (await client.ReceiveAsync(one, SocketFlags.None, _cts.Token) == 0) return;
                head.Add(one[0]);
            }
            var requestLine = Encoding.ASCII.GetString([.. head]).Split("\r\n")[0];
            lock (Requests) Requests.Add(requestLine);
            var parts = requestLine.Split(' ');
            if (parts.Length != 3 || parts[0] != "CONNECT")
            {
                await client.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"), SocketFlags.None);
                return;
            }
            var target = parts[1].Split(':');
            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            lock (_sockets) _sockets.Add(upstream);
            await upstream.ConnectAsync(target[0], int.Parse(target[1], System.Globalization.CultureInfo.InvariantCulture), _cts.Token);
            await client.SendAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 Connection established\r\n\r\n"), SocketFlags.None);
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
