using System.Net;
using System.Net.Sockets;

namespace Pinhole.Benchmarks;

/// <summary>
/// Where a peer (ffmpeg) pushes its output in a benchmark: listens on a free port, accepts one TCP
/// connection and hands its stream to a reader until the peer closes it or the sink is disposed.
/// </summary>
internal sealed class TcpSink : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop;
    private readonly Task _reader;

    /// <param name="address">The address to listen on.</param>
    /// <param name="read">Reads the connection; cancelled when the sink is disposed.</param>
    /// <param name="cancellationToken">Also stops the reader.</param>
    public TcpSink(IPAddress address, Func<NetworkStream, CancellationToken, Task> read, CancellationToken cancellationToken)
    {
        _listener = new TcpListener(address, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _reader = Task.Run(async () =>
        {
            try
            {
                using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                await read(client.GetStream(), _stop.Token);
            }
            catch (OperationCanceledException) { }
            catch (IOException) { }
        }, CancellationToken.None);
    }

    /// <summary>A sink that reads and discards everything, so the peer does the same network work as
    /// the edge without a real consumer.</summary>
    public static TcpSink Discarding(IPAddress address, CancellationToken cancellationToken) =>
        new(address, async (stream, ct) =>
        {
            var buffer = new byte[64 * 1024];
            while (await stream.ReadAsync(buffer, ct) > 0) { }
        }, cancellationToken);

    /// <summary>The port it listens on.</summary>
    public int Port { get; }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _reader;
        _listener.Stop();
        _listener.Dispose();
        _stop.Dispose();
    }
}
