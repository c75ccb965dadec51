using System.Net;
using System.Net.Sockets;

namespace Pinhole.Benchmarks;

/// <summary>
/// Where a peer (ffmpeg) pushes its output in a benchmark: accepts one TCP connection and reads and
/// discards everything, so the peer does the same network work as the edge without a real consumer.
/// </summary>
internal sealed class DiscardingTcpSink : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop;
    private readonly Task _reader;

    public DiscardingTcpSink(IPAddress address, CancellationToken cancellationToken)
    {
        _listener = new TcpListener(address, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _reader = Task.Run(ReadAllAsync, CancellationToken.None);
    }

    /// <summary>The port it listens on.</summary>
    public int Port { get; }

    private async Task ReadAllAsync()
    {
        try
        {
            using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            var buffer = new byte[64 * 1024];
            var stream = client.GetStream();
            while (await stream.ReadAsync(buffer, _stop.Token) > 0) { }
        }
        catch (OperationCanceledException) { }
        catch (IOException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _reader;
        _listener.Stop();
        _listener.Dispose();
        _stop.Dispose();
    }
}
