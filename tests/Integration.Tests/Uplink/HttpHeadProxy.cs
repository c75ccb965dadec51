using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>
/// A TCP proxy on a free loopback port that reads each connection's HTTP head (up to the blank line)
/// and lets the subclass decide what to do with it: answer, hold, or connect upstream and relay. It
/// owns the listener, the sockets it accepted or opened and the tasks serving them, and closes them
/// all on dispose.
/// </summary>
internal abstract class HttpHeadProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _cts = new();
    private readonly List<Task> _tasks = [];
    private readonly List<Socket> _sockets = [];
    private readonly int _maxHeadBytes;
    private Task _accept = Task.CompletedTask;

    /// <param name="maxHeadBytes">A head longer than this is handled as it is, cut at this length.</param>
    protected HttpHeadProxy(int maxHeadBytes) => _maxHeadBytes = maxHeadBytes;

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Cancelled when the proxy is disposed.</summary>
    protected CancellationToken Stopping => _cts.Token;

    /// <summary>Starts listening; a subclass calls it at the end of its constructor.</summary>
    protected void Start()
    {
        _listener.Start();
        _accept = AcceptAsync();
    }

    /// <summary>Serves one connection whose head (bytes up to and with the blank line) was read.</summary>
    protected abstract Task HandleAsync(Socket client, byte[] head);

    /// <summary>Opens a connection to <paramref name="host"/>:<paramref name="port"/> that dispose closes.</summary>
    protected async Task<Socket> ConnectAsync(string host, int port, bool noDelay = false)
    {
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = noDelay };
        lock (_sockets) _sockets.Add(upstream);
        await upstream.ConnectAsync(host, port, _cts.Token);
        return upstream;
    }

    /// <summary>Copies bytes both ways until either side closes.</summary>
    protected Task RelayAsync(Socket client, Socket upstream) => Task.WhenAny(PumpAsync(client, upstream), PumpAsync(upstream, client));

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var client = await _listener.AcceptSocketAsync(_cts.Token);
                lock (_sockets) { _sockets.Add(client); _tasks.Add(ServeAsync(client)); }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task ServeAsync(Socket client)
    {
        try
        {
            var head = new List<byte>();
            var one = new byte[1];
            while (head.Count < _maxHeadBytes && !(head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n'))
            {
                if (await client.ReceiveAsync(one, SocketFlags.None, _cts.Token) == 0) return;
                head.Add(one[0]);
            }
            await HandleAsync(client, [.. head]);
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

    /// <summary>The head as text (HTTP heads are ASCII).</summary>
    protected static string Text(byte[] head) => Encoding.ASCII.GetString(head);

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
        GC.SuppressFinalize(this);
    }
}
