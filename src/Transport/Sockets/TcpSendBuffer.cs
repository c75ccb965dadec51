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
    private const int TcpInfo = 11;

    // Offsets in struct tcp_info (linux/tcp.h): tcpi_snd_mss, tcpi_unacked, tcpi_notsent_bytes,
    // tcpi_bytes_acked, tcpi_min_rtt, tcpi_delivery_rate (kernel 4.9+; an older kernel returns a shorter struct).
    private const int SndMssOffset = 16, UnackedOffset = 24, BytesAckedOffset = 120, NotSentOffset = 144, MinRttOffset = 148, DeliveryRateOffset = 160;
    private const int TcpInfoLength = 168;

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

    /// <summary>
    /// What the socket holds below the application, from <c>TCP_INFO</c>: bytes in flight (unacknowledged
    /// segments × MSS) plus bytes not sent yet, the connection's minimum RTT and the kernel's delivery
    /// rate estimate; null where it cannot be read (not Linux, a kernel older than 4.9, a closed socket).
    /// </summary>
    public static TcpQueueInfo? QueueInfo(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (!OperatingSystem.IsLinux()) return null;
        Span<byte> info = stackalloc byte[TcpInfoLength + 64];
        try
        {
            var length = socket.GetRawSocketOption((int)SocketOptionLevel.Tcp, TcpInfo, info);
            if (length < TcpInfoLength) return null;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return null;
        }
        var mss = BitConverter.ToUInt32(info[SndMssOffset..]);
        var unacked = BitConverter.ToUInt32(info[UnackedOffset..]);
        var notSent = BitConverter.ToUInt32(info[NotSentOffset..]);
        var minRtt = BitConverter.ToUInt32(info[MinRttOffset..]);
        var rate = BitConverter.ToUInt64(info[DeliveryRateOffset..]);
        var acked = BitConverter.ToUInt64(info[BytesAckedOffset..]);
        return new TcpQueueInfo((long)unacked * mss + notSent, minRtt == uint.MaxValue ? TimeSpan.Zero : TimeSpan.FromMicroseconds(minRtt), (long)Math.Min(rate, long.MaxValue))
        {
            BytesAcked = (long)Math.Min(acked, long.MaxValue),
        };
    }
}

/// <summary>What a TCP socket holds below the application (see <see cref="TcpSendBuffer.QueueInfo"/>).</summary>
/// <param name="OutstandingBytes">Bytes in flight plus bytes not sent yet.</param>
/// <param name="MinRtt">The connection's smallest round-trip time seen.</param>
/// <param name="DeliveryRate">The kernel's estimate of the rate the path delivers, bytes per second (0 before any).</param>
public readonly record struct TcpQueueInfo(long OutstandingBytes, TimeSpan MinRtt, long DeliveryRate)
{
    /// <summary>Bytes the peer acknowledged since the connection began (<c>tcpi_bytes_acked</c>).</summary>
    public long BytesAcked { get; init; }
}
