using System.Collections.Concurrent;
using System.Threading.Channels;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// One connected uplink's state, shared by its sender (<see cref="UplinkSender"/>), its receiver
/// (<see cref="UplinkReceiver"/>) and camera threads that send inline: the link, the session's rules, the
/// control and tunnel queues, and what the acks tell about the link.
/// </summary>
internal sealed class UplinkConnection(UplinkClientConnection link, UplinkSession session, TimeProvider time)
{
    /// <summary>The in-flight window before the first delivery-rate sample, and its floor.</summary>
    public const long MinWindowBytes = 16 * 1024;

    /// <summary>How far back the link's rate (busy intervals only) looks.</summary>
    public static readonly TimeSpan RateFilterWindow = TimeSpan.FromSeconds(5);

    /// <summary>How far back the delivery rate (all intervals) looks.</summary>
    public static readonly TimeSpan DeliveryRateWindow = TimeSpan.FromSeconds(2);

    public UplinkClientConnection Link { get; } = link;
    // Handshake result, heartbeats, dead link and the end reason.
    public UplinkSession Session { get; } = session;
    public Welcome Welcome { get; } = session.Welcome!;
    public long LastReport = time.GetTimestamp();
    public readonly Channel<UplinkMessage> Control = Channel.CreateUnbounded<UplinkMessage>(new UnboundedChannelOptions { SingleReader = true });
    // Tunnel data and half-closes: sent only when no frame is waiting (video first), bounded so a
    // bulk transfer waits in its stream's window rather than in memory here.
    public readonly Channel<UplinkMessage> TunnelOut = Channel.CreateBounded<UplinkMessage>(new BoundedChannelOptions(16) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    public TunnelMux? Tunnels;
    public readonly ConcurrentDictionary<ushort, IReadOnlyList<TrackInfo>> Announced = new();
    public readonly Dictionary<ushort, long> ReportedDrops = [];
    public readonly Lock InFlightLock = new();
    public readonly Queue<(ulong Sequence, long SentAt)> InFlight = new();
    public readonly Queue<(long At, long Bytes, double Seconds)> RateSamples = new();
    public readonly LinkRateFilter LinkRate = new(time, RateFilterWindow);
    public long SentAtLastAck;
    public long LastAckAt, LastAckBytes;
    public long WindowBytes = MinWindowBytes;
    public long LowWatermark = MinWindowBytes;
    public double BytesPerSecond;
    public long AckedBytes;
    public ulong Sequence;

    // Sending: whoever holds PumpLock sends, the sender thread or a camera's thread inline. A send
    // the kernel did not take at once leaves bytes pending in the connection; only the sender
    // thread sends after that, and it flushes them first, so messages keep their order.
    public readonly Lock PumpLock = new();
    public CancellationToken Sending;
    // A frame whose StreamAnnounce is still pending; it goes right after it.
    public QueuedFrame? Carry;
    // Set by the pump when tunnel data waits for the socket's backlog to drain: how long until it looks again.
    public TimeSpan? TunnelPoll;
    public readonly TunnelBudget TunnelBudget = new(time);
}
