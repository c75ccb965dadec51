using System.Net.Sockets;

namespace Pinhole.Transport.Sockets;

/// <summary>
/// How much a TCP socket keeps below the application. Linux's <c>TCP_NOTSENT_LOWAT</c> caps the bytes
/// a socket holds that were not sent yet (on top of what is in flight, which the congestion window
/// bounds): the socket reports writable, and <c>send</c> takes more, only while fewer unsent bytes
/// than that wait. A live sender then keeps frames in its own queue, where it can drop them by GOP,
/// instead of in a send buffer that autotunes to megabytes (seconds on a slow link).
/// </summary>
internal static class TcpSendBuffer
{
    // linux/tcp.h; not in .NET's SocketOptionName.
    private const int TcpNotSentLowat = 25;

    /// <summary>Smallest watermark set: a few full-size segments, so a fast link is never starved between wake-ups.</summary>
    public const int MinLowWatermark = 16 * 1024;

    /// <summary>Largest watermark set.</summary>
    public const int MaxLowWatermark = 4 * 1024 * 1024;

    /// <summary>
    /// Sets <c>TCP_NOTSENT_LOWAT</c> (clamped to <see cref="MinLowWatermark"/>..<see cref="MaxLowWatermark"/>);
    /// false where the platform has no such option (the socket then buffers as the kernel likes).
    /// </summary>
    public static bool TrySetNotSentLowWatermark(Socket socket, int bytes)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (!OperatingSystem.IsLinux()) return false;
        var value = BitConverter.GetBytes(Math.Clamp(bytes, MinLowWatermark, MaxLowWatermark));
        try
        {
            socket.SetRawSocketOption((int)SocketOptionLevel.Tcp, TcpNotSentLowat, value);
            return true;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return false;
        }
    }

    /// <summary>The socket's <c>TCP_NOTSENT_LOWAT</c>, or null where it cannot be read.</summary>
    public static int? NotSentLowWatermark(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (!OperatingSystem.IsLinux()) return null;
        var value = new byte[4];
        try
        {
            return socket.GetRawSocketOption((int)SocketOptionLevel.Tcp, TcpNotSentLowat, value) == 4 ? BitConverter.ToInt32(value) : null;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return null;
        }
    }
}
