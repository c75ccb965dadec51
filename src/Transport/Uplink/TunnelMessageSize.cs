namespace Pinhole.Transport.Uplink;

/// <summary>
/// How large a sender's <see cref="TunnelData"/> messages should be on its link. A message goes into the socket whole,
/// and a live video frame queued behind it waits until the link has carried all of it: a 64 KiB message takes 87 ms to
/// cross a 6 Mbit/s uplink (TunnelVideoTests saw +361 ms of video delay at p95 with such messages). So each message
/// carries about <see cref="Target"/> of the link's time, between <see cref="MinBytes"/> (per-message overhead stays
/// under 1 %) and <see cref="UplinkProtocol.MaxTunnelDataBytes"/>, which a link of 44 Mbit/s and more (loopback) gets.
/// </summary>
public static class TunnelMessageSize
{
    /// <summary>The link time one message takes at most (above the floor): 12 ms.</summary>
    public static readonly TimeSpan Target = TimeSpan.FromMilliseconds(12);

    /// <summary>The smallest size chosen: 4 KiB (about 6 ms at 6 Mbit/s, 33 ms at 1 Mbit/s).</summary>
    public const int MinBytes = 4 * 1024;

    /// <summary>The message size for a link delivering <paramref name="bytesPerSecond"/>; the largest when the rate is unknown (0 or less).</summary>
    public static int ForRate(double bytesPerSecond)
    {
        if (!(bytesPerSecond > 0)) return UplinkProtocol.MaxTunnelDataBytes;
        return (int)Math.Clamp(bytesPerSecond * Target.TotalSeconds, MinBytes, UplinkProtocol.MaxTunnelDataBytes);
    }
}
