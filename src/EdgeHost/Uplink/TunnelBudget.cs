using Pinhole.Transport.Sockets;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>
/// How much tunnel data the uplink's socket may hold, and how large each tunnel message is, so that live video never
/// waits long behind tunnel bytes (docs/tunnels.md, "Video first"). One per connection; <see cref="HeldBack"/> is called
/// by the sender only, <see cref="MessageBytes"/> by any tunnel writer.
/// <para>
/// Tunnel data may go while the socket holds (in flight and not yet sent) less than the link's rate × (its minimum RTT +
/// <see cref="Backlog"/>), at least <see cref="MinBudgetBytes"/>. The rate is the kernel's delivery-rate estimate, but at
/// most <see cref="Growth"/> × the most the socket was seen to deliver (bytes acknowledged per 50 ms, the highest of the last
/// second). The kernel's estimate alone can be several times the link's before a bulk transfer: video frames pass a
/// token-bucket bottleneck (a shaper, a modem's) at line speed from its bucket, and the kernel keeps the highest of such
/// app-limited samples. Trusted alone, it let a starting transfer fill the bottleneck's queue until it dropped packets, and
/// the video stalled for up to a second (TunnelVideoTests, 6 Mbit/s). Capped by what was delivered, the budget grows about
/// fourfold per 50 ms while the link has room, so a fast link (loopback) is at full speed within a few tenths of a second;
/// the cap is a multiple, not the delivered rate itself, because on a loaded machine the sender wakes late, delivers less
/// than the link could, and the budget would shrink with it.
/// </para>
/// </summary>
internal sealed class TunnelBudget(TimeProvider time)
{
    /// <summary>The smallest budget: a few segments, so tunnel data always moves.</summary>
    public const long MinBudgetBytes = 16 * 1024;

    /// <summary>The link time the budget holds beyond the minimum RTT. 50 ms (SendBacklog) left a median of +64 ms and a p95
    /// of +115 ms of video delay on a 20 Mbit/s link; 15 ms about +40 ms.</summary>
    public static readonly TimeSpan Backlog = TimeSpan.FromMilliseconds(15);

    /// <summary>How far above what the socket delivered the rate may be taken: 4.</summary>
    public const int Growth = 4;

    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(50), SampleMax = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan PollMin = TimeSpan.FromMilliseconds(1), PollMax = TimeSpan.FromMilliseconds(20);
    private long _sampleAt, _sampleAcked, _delivered, _deliveredAt;

    /// <summary>The most the socket was seen to deliver in a sample of the last second (or the latest sample), bytes per second;
    /// 0 before the first sample.</summary>
    public long DeliveredBytesPerSecond => Interlocked.Read(ref _delivered);

    /// <summary>True when tunnel data must wait: then <paramref name="poll"/> is when to look again (the excess should have drained).</summary>
    public bool HeldBack(TcpQueueInfo socket, out TimeSpan poll)
    {
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
        var cap = DeliveredBytesPerSecond * Growth;
        return cap > 0 && socket.DeliveryRate > 0 ? Math.Min(cap, socket.DeliveryRate) : cap;
    }

    // A window of at least SampleInterval; one longer than SampleMax spanned an idle tunnel and starts over, keeping the rate.
    private void Sample(TcpQueueInfo socket)
    {
        var now = time.GetTimestamp();
        var elapsed = time.GetElapsedTime(_sampleAt, now);
        if (_sampleAt == 0 || elapsed > SampleMax || socket.BytesAcked < _sampleAcked)
        {
            _sampleAt = now;
            _sampleAcked = socket.BytesAcked;
            return;
        }
        if (elapsed < SampleInterval) return;
        var rate = (long)((socket.BytesAcked - _sampleAcked) / elapsed.TotalSeconds);
        if (rate >= DeliveredBytesPerSecond || time.GetElapsedTime(_deliveredAt, now) > SampleMax)
        {
            Interlocked.Exchange(ref _delivered, rate);
            _deliveredAt = now;
        }
        _sampleAt = now;
        _sampleAcked = socket.BytesAcked;
    }
}
