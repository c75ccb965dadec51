using System.Net;
using System.Net.Sockets;

namespace Pinhole.Transport.Sockets;

/// <summary>
/// Connects a TCP socket without ever touching .NET's async socket engine. One async call would make
/// the socket non-blocking for good and route every later read through the epoll thread and the
/// pool; the camera reader and the uplink want their socket to themselves, on their own thread.
/// </summary>
internal static class BlockingConnect
{
    /// <summary>
    /// Tries each address in turn with a blocking connect (run it on a thread of its own) and returns
    /// the first connected socket, with Nagle off and no send timeout. Cancelling closes the socket
    /// being connected.
    /// </summary>
    /// <exception cref="SocketException">No address answered; the last failure.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static Socket Connect(IPAddress[] addresses, int port, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        SocketException? last = null;
        foreach (var address in addresses)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // Linux bounds a blocking connect by SO_SNDTIMEO, so an unanswered SYN does not hold this
            // thread for the kernel's two minutes after the caller gave up. A second more than the
            // caller's own timeout, so the caller's clear timeout message wins the race.
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            {
                NoDelay = true,
                SendTimeout = (int)Math.Clamp(connectTimeout.TotalMilliseconds + 1000, 1, int.MaxValue),
            };
            try
            {
                using (cancellationToken.UnsafeRegister(static s => ((Socket)s!).Dispose(), socket))
                    socket.Connect(address, port);
                socket.SendTimeout = 0;
                return socket;
            }
            catch (SocketException e)
            {
                socket.Dispose();
                last = e;
            }
            catch (ObjectDisposedException)
            {
                socket.Dispose();
                cancellationToken.ThrowIfCancellationRequested();
                throw;
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }
}
