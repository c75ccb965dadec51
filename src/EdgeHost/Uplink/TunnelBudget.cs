using Pinhole.Transport.Sockets;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// How much tunnel data the uplink's socket may hold, and how large each tunnel message is, so that live video never
/// waits long behind tunnel bytes (docs/tunnels.md, "Video first"). One per connection; <see cref="HeldBack"/> is called
/// by the sender only, <see cref="MessageBytes"/> by any tunnel writer.
/// <para>
/// Tunnel data may go while the socket holds (in flight and not yet sent) less than the link's rate × (its minimum RTT +
/// <see cref="Backlog"/>), at least <see cref="MinBudgetBytes"/>. The rate is what the socket was seen to deliver (bytes
/// acknowledged per 50 ms), and no more than the kernel's delivery-rate estimate. The kernel's estimate alone is no
/// measure of the link here: before a transfer, video frames pass a token-bucket bottleneck (a shaper, a modem's) at line
/// speed from its bucket, the kernel keeps the highest of such app-limited samples, and this budget keeps the socket
/// app-limited so the estimate never comes down. Trusted, it let a starting transfer fill the bottleneck's queue until it
/// dropped packets (the video stalled for up to a second on TunnelVideoTests' 6 Mbit/s link), and 4 × the delivered rate
/// as a cap still added +118 ms of median video delay there.
/// </para>
/// <para>
/// A window in which the socket ran nearly empty while tunnel data waited was limited by the sender, not the link (on a
/// fast link, or a loaded machine where the sender wakes late): its rate only raises the estimate, and the budget then
/// allows <see cref="SenderLimitedGrowth"/> × the rate, so it grows until the link, not the sender, is the limit — on
/// loopback within a few tenths of a second. Taken as it is, such a rate shrank the budget to the floor (7.2 MB/s through
/// the loopback tunnel instead of about 30).
/// </para>
/// </summary>
internal sealed class TunnelBudget(TimeProvider time)
{
    /// <summary>The smallest budget: a few segments, so tunnel data always moves.</summary>
    public const long MinBudgetBytes = 16 * 1024;

    /// <summary>The link time the budget holds beyond the minimum RTT. 50 ms (SendBacklog) left a median of +64 ms and a p95
    /// of +115 ms of video delay on a 20 Mbit/s link; 15 ms about +40 ms.</summary>
    public static readonly TimeSpan Backlog = TimeSpan.FromMilliseconds(15);

    /// <summary>How far above what the socket delivered the rate is taken after a window the sender limited: 2.</summary>
    public const int SenderLimitedGrowth = 2;

    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(50), SampleMax = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PollMin = TimeSpan.FromMilliseconds(1), PollMax = TimeSpan.FromMilliseconds(20);
    private long _sampleAt, _sampleAcked, _delivered;
    private bool _windowSenderLimited;
    private volatile bool _senderLimited;

    /// <summary>What the socket was seen to deliver, bytes per second: the latest window the link limited, or more in a window the sender
    /// limited; 0 before the first sample.</summary>
    public long DeliveredBytesPerSecond => Interlocked.Read(ref _delivered);

    /// <summary>True when tunnel data must wait: then <paramref name="poll"/> is when to look again (the excess should have drained).</summary>
    public bool HeldBack(TcpQueueInfo socket, out TimeSpan poll)
    {
        // Tunnel data waits, and the socket has next to nothing left: this window, the sender was the limit.
        if (socket.OutstandingBytes < MinBudgetBytes / 4) _windowSenderLimited = true;
        Sample(socket);
        var rate = Rate(socket);
        var budget = Math.Max(MinBudgetBytes, (long)(rate * (socket.MinRtt + Backlog).TotalSeconds));
        poll = TimeSpan.Zero;
        if (socket.OutstandingBytes < budget) return false;
        // Looking again early costs a wake-up; late, link time: drain at the higher estimate.
        var drainRate = Math.Max(rate, socket.DeliveryRate);
        var drain = drainRate > 0 ? TimeSpan.FromSeconds((double)(socket.OutstandingBytes - budget) / drainRate) : PollMax;
        poll = drain < PollMin ? PollMin : drain > PollMax ? PollMax : drain;
        return true;
    }

    /// <summary>The size of the next tunnel message (<see cref="TunnelMessageSize"/>) at the rate the budget uses; the smallest before
    /// the first sample.</summary>
    public int MessageBytes(TcpQueueInfo socket) => Rate(socket) is var rate && rate > 0 ? TunnelMessageSize.ForRate(rate) : TunnelMessageSize.MinBytes;

    private long Rate(TcpQueueInfo socket)
    {
        var rate = DeliveredBytesPerSecond * (_senderLimited ? SenderLimitedGrowth : 1);
        return rate > 0 && socket.DeliveryRate > 0 ? Math.Min(rate, socket.DeliveryRate) : rate;
    }

    // A window of at least SampleInterval; one longer than SampleMax spanned an idle tunnel and starts over, keeping the rate.
    private void Sample(TcpQueueInfo socket)
    {
        var now = time.GetTimestamp();
        var elapsed = time.GetElapsedTime(_sampleAt, now);
        if (_sampleAt == 0 || elapsed > SampleMax || socket.BytesAcked < _sampleAcked)
        {
            StartWindow(now, socket);
            return;
        }
        if (elapsed < SampleInterval) return;
        var rate = (long)((socket.BytesAcked - _sampleAcked) / elapsed.TotalSeconds);
        if (!_windowSenderLimited || rate > DeliveredBytesPerSecond) Interlocked.Exchange(ref _delivered, rate);
        _senderLimited = _windowSenderLimited;
        StartWindow(now, socket);
    }

    private void StartWindow(long now, TcpQueueInfo socket)
    {
        _sampleAt = now;
        _sampleAcked = socket.BytesAcked;
        _windowSenderLimited = socket.OutstandingBytes < MinBudgetBytes / 4;
    }
}
