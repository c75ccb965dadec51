using System.Net.Sockets;

namespace Pinhole.Transport.Uplink;

/// <summary>Carries bytes between a TCP socket and a <see cref="TunnelStream"/> both ways, with half-closes.</summary>
public static class TunnelBridge
{
    private const int BufferSize = 64 * 1024;

    /// <summary>
    /// Runs until both directions ended: the socket's FIN becomes <see cref="TunnelStream.CompleteWritesAsync"/>,
    /// the stream's end becomes <see cref="Socket.Shutdown"/>(Send). A reset on either side aborts both.
    /// Neither is disposed here.
    /// </summary>
    public static async Task RunAsync(Socket socket, TunnelStream stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(stream);
        var up = SocketToTunnelAsync(socket, stream, cancellationToken);
        var down = TunnelToSocketAsync(stream, socket, cancellationToken);
        await Task.WhenAll(up, down).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    private static async Task SocketToTunnelAsync(Socket socket, TunnelStream stream, CancellationToken ct)
    {
        var buffer = new byte[BufferSize];
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, ct);
                if (n == 0)
                {
                    await stream.CompleteWritesAsync(ct);
                    return;
                }
                await stream.WriteAsync(buffer.AsMemory(0, n), ct);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            stream.Reset(TunnelResetCode.Cancelled, "the connection was reset");
        }
        catch (IOException)
        {
            // The stream was reset by the peer: end the socket abruptly as well.
            Abort(socket);
        }
    }

    private static async Task TunnelToSocketAsync(TunnelStream stream, Socket socket, CancellationToken ct)
    {
        var buffer = new byte[BufferSize];
        try
        {
            while (true)
            {
                var n = await stream.ReadAsync(buffer, ct);
                if (n == 0)
                {
                    socket.Shutdown(SocketShutdown.Send);
                    return;
                }
                var sent = 0;
                while (sent < n) sent += await socket.SendAsync(buffer.AsMemory(sent, n - sent), SocketFlags.None, ct);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            stream.Reset(TunnelResetCode.Cancelled, "the connection was reset");
        }
        catch (IOException)
        {
            Abort(socket);
        }
    }

    private static void Abort(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0);
            socket.Close();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
