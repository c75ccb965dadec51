using System.Net;
using System.Net.Sockets;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// A loopback listener in the test's (root) namespace that pipes each connection to one made by <c>connect</c>, e.g.
/// a socket made inside a NAT topology's WAN namespace: the test, an HTTP client or a browser then acts as a host in
/// that namespace.
/// </summary>
internal sealed class NamespaceForwarder : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public NamespaceForwarder(Func<Task<TcpClient>> connect)
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var inbound = await _listener.AcceptTcpClientAsync(_stop.Token);
                    _ = Task.Run(async () =>
                    {
                        try
                        {
                            using (inbound)
                            using (var outbound = await connect())
                            {
                                var a = Pipe(inbound.GetStream(), outbound.Client, outbound.GetStream());
                                var b = Pipe(outbound.GetStream(), inbound.Client, inbound.GetStream());
                                await Task.WhenAll(a, b);
                            }
                        }
                        catch (Exception e) when (e is IOException or SocketException or TimeoutException or ObjectDisposedException) { }
                    });
                }
            }
            catch (OperationCanceledException) { }
            catch (ObjectDisposedException) { }
            catch (SocketException) { }
        });
    }

    /// <summary>The loopback port to connect to.</summary>
    public int Port { get; }

    // Copies until EOF, then half-closes the other side; errors end the pipe quietly (the test sees them).
    private async Task Pipe(NetworkStream from, Socket toSocket, NetworkStream to)
    {
        try
        {
            await from.CopyToAsync(to, _stop.Token);
            toSocket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
