using Pinhole.EdgeHost.Uplink;
using Pinhole.Transport.Media;
using System.Diagnostics.Metrics;

namespace Pinhole.EdgeHost.Tests.Uplink;

public class UplinkSendQueueTests
{
    private static readonly TrackInfo Video = new() { Codec = MediaCodec.H264, ClockRate = 90_000 };
    private static readonly TrackInfo Audio = new() { Codec = MediaCodec.Aac, ClockRate = 48_000, SampleRate = 48_000, Channels = 1 };

    // Frame i of a 25 fps stream with a keyframe every 25 frames; the payload carries i.
    private static AccessUnit Frame(int i, int track = 0, bool? key = null) =>
        new(track, i * 3600L, i * 3600L, key ?? i % 25 == 0, BitConverter.GetBytes(i));

    private static int Index(in QueuedFrame f) => BitConverter.ToInt32(f.Unit.Data.Span);

    private static List<int> Drain(UplinkSendQueue q)
    {
        var list = new List<int>();
        while (q.TryDequeue(out var f)) list.Add(Index(f));
        return list;
    }

    // What the sender does: an ended camera's StreamEnd goes out as soon as it is due, then frames.
    private static List<string> DrainWithEnds(UplinkSendQueue q)
    {
        var list = new List<string>();
        while (true)
        {
            if (q.TryTakeEnded(out var ended)) list.Add("end " + ended!.Name);
            else if (q.TryDequeue(out var f)) list.Add(Index(f).ToString(System.Globalization.CultureInfo.InvariantCulture));
            else return list;
        }
    }

    // Found with real peers: the camera said BYE while frames were still queued (a slow uplink), the
    // edge restarted it a second later, and its new tracks cancelled the pending StreamEnd. The relay
    // never learnt the source restarted, and viewers' RTP time jumped back to the new session's origin.
    [Fact]
    public void A_camera_that_ends_and_restarts_before_its_queue_drained_still_ends_between_its_old_and_new_frames()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(2), 1 << 20, time, new Meter("test"));
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        for (var i = 0; i < 10; i++) q.Enqueue(cam, Frame(i));
        q.EndStream(cam);

        q.SetTracks(cam, [Video]); // the source restarted: new tracks, a new clock
        for (var i = 100; i < 105; i++) q.Enqueue(cam, Frame(i, key: i == 100));

        Assert.Equal([.. Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), "end cam", "100", "101", "102", "103", "104"], DrainWithEnds(q));
    }

    [Fact]
    public void A_camera_that_ends_with_nothing_queued_ends_at_once_and_only_once()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(2), 1 << 20, time, new Meter("test"));
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        q.Enqueue(cam, Frame(0));
        Assert.Equal(["0"], DrainWithEnds(q));
        q.EndStream(cam);
        Assert.Equal(["end cam"], DrainWithEnds(q));
        q.SetTracks(cam, [Video]);
        q.Enqueue(cam, Frame(25));
        Assert.Equal(["25"], DrainWithEnds(q));
    }

    [Fact]
    public void Fast_link_delivers_everything_in_order_after_the_first_keyframe()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(2), 1 << 20, time, new Meter("test"));
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        var sent = new List<int>();
        for (var i = 20; i < 100; i++)
        {
            q.Enqueue(cam, Frame(i));
            time.Advance(TimeSpan.FromMilliseconds(40));
            sent.AddRange(Drain(q));
        }
        Assert.Equal(Enumerable.Range(25, 75), sent); // 20..24 precede the first keyframe of the connection
        Assert.Equal(5, cam.DroppedFrames);
    }

    [Fact]
    public void Stalled_link_keeps_at_most_the_time_bound_and_resumes_at_a_keyframe()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(1.5), 1 << 20, time, new Meter("test"));
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        // 4 s of video while nothing is sent.
        for (var i = 0; i < 100; i++)
        {
            q.Enqueue(cam, Frame(i));
            time.Advance(TimeSpan.FromMilliseconds(40));
        }

        var sent = Drain(q);

        // Only the newest whole GOP start onwards survives, and nothing older than 1.5 s.
        Assert.Equal(Enumerable.Range(75, 25), sent);
        Assert.Equal(75, cam.DroppedFrames);
    }

    [Fact]
    public void Overflow_mid_gop_drops_the_gop_tail_and_skips_to_the_next_keyframe()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(0.5), 1 << 20, time, new Meter("test"));
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        var sent = new List<int>();
        for (var i = 0; i < 75; i++)
        {
            q.Enqueue(cam, Frame(i));
            time.Advance(TimeSpan.FromMilliseconds(40));
            // The link works for frames 0..9, stalls for 10..39, then works again.
            if (i < 10 || i >= 40) sent.AddRange(Drain(q));
        }

        // Every sent frame either starts a GOP or directly follows its predecessor: no broken GOP.
        for (var k = 1; k < sent.Count; k++)
            Assert.True(sent[k] % 25 == 0 || sent[k] == sent[k - 1] + 1, $"frame {sent[k]} follows {sent[k - 1]}");
        Assert.Contains(50, sent);
        Assert.DoesNotContain(30, sent);
        Assert.Equal(75 - sent.Count, cam.DroppedFrames);
    }

    [Fact]
    public void Byte_cap_drops_by_gop_too()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(100), 40, time, new Meter("test")); // 10 frames of 4 bytes
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        for (var i = 0; i < 30; i++) q.Enqueue(cam, Frame(i));
        var sent = Drain(q);
        Assert.Equal([25, 26, 27, 28, 29], sent);
    }

    [Fact]
    public void Audio_follows_the_video_gop_and_cameras_interleave_in_arrival_order()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(2), 1 << 20, time, new Meter("test"));
        var a = q.AddCamera("a");
        var b = q.AddCamera("b");
        q.SetTracks(a, [Video, Audio]);
        q.SetTracks(b, [Video]);
        q.Enqueue(a, Frame(1000, track: 1, key: true)); // audio before the first video keyframe: dropped on a new connection
        q.Enqueue(a, Frame(0));
        q.Enqueue(b, Frame(100, key: true));
        q.Enqueue(a, Frame(1001, track: 1, key: true));
        q.Enqueue(b, Frame(101, key: false));
        var order = new List<(string, int)>();
        while (q.TryDequeue(out var f)) order.Add((f.Camera.Name, Index(f)));
        Assert.Equal([("a", 0), ("b", 100), ("a", 1001), ("b", 101)], order);
        Assert.Equal(1, a.DroppedFrames);
    }

    [Fact]
    public void Frames_before_tracks_are_dropped_and_counted()
    {
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(2), 1 << 20, new ManualTime(), new Meter("test"));
        var cam = q.AddCamera("cam");
        q.Enqueue(cam, Frame(0));
        Assert.False(q.TryDequeue(out _));
        Assert.Equal(1, cam.DroppedFrames);
    }

    [Fact]
    public void New_connection_restarts_every_camera_at_a_keyframe()
    {
        var time = new ManualTime();
        var q = new UplinkSendQueue(TimeSpan.FromSeconds(2), 1 << 20, time, new Meter("test"));
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        for (var i = 0; i < 10; i++) q.Enqueue(cam, Frame(i));
        Assert.Equal(Enumerable.Range(0, 10), Drain(q));
        q.ResetForNewConnection();
        for (var i = 10; i < 30; i++) q.Enqueue(cam, Frame(i));
        Assert.Equal(Enumerable.Range(25, 5), Drain(q));
    }

    // Delay-bounded sending on a slow link (docs/benchmarks.md, slow-link): frames are 4 bytes here,
    // so a rate of a few bytes per second makes a transfer time of a large fraction of a second.
    private static UplinkSendQueue SlowLinkQueue(ManualTime time, double targetSeconds = 0.8) =>
        new(TimeSpan.FromSeconds(2), 1 << 20, time, new Meter("test")) { TargetDelay = TimeSpan.FromSeconds(targetSeconds) };

    [Fact]
    public void On_a_slow_link_the_rest_of_a_gop_that_would_arrive_after_the_target_is_dropped()
    {
        var time = new ManualTime();
        var q = SlowLinkQueue(time);
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        for (var i = 0; i < 10; i++)
        {
            q.Enqueue(cam, Frame(i));
            time.Advance(TimeSpan.FromMilliseconds(40));
        }

        // Frame 0 (the keyframe, 0.4 s old) takes 0.1 s more on an idle link: in time.
        Assert.True(q.TryDequeue(out var key, bytesAhead: 0, bytesPerSecond: 40));
        Assert.Equal(0, Index(key));
        // Frame 1 is 0.36 s old and needs 0.5 s (its 4 bytes behind 16 still ahead): 0.86 s > 0.8 s.
        Assert.False(q.TryDequeue(out _, bytesAhead: 16, bytesPerSecond: 40));
        Assert.Equal(9, cam.DroppedFrames);

        // The camera resumes at its next keyframe.
        for (var i = 10; i < 30; i++) q.Enqueue(cam, Frame(i));
        Assert.Equal(Enumerable.Range(25, 5), Drain(q));
        Assert.Equal(9 + 15, cam.DroppedFrames);
    }

    // The per-GOP decision: a keyframe that would arrive late costs its bytes for a GOP that could
    // show only its first frames, so the whole GOP is skipped.
    [Fact]
    public void On_a_slow_link_a_keyframe_that_would_arrive_late_is_dropped_with_its_whole_gop()
    {
        var time = new ManualTime();
        var q = SlowLinkQueue(time);
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        for (var i = 0; i < 10; i++)
        {
            q.Enqueue(cam, Frame(i));
            time.Advance(TimeSpan.FromMilliseconds(40));
        }

        // The keyframe is 0.4 s old and waits 0.4 s behind 16 bytes at 40 B/s, then takes 0.1 s: 0.9 s > 0.8 s.
        Assert.False(q.TryDequeue(out _, bytesAhead: 16, bytesPerSecond: 40));
        Assert.Equal(10, cam.DroppedFrames);
        for (var i = 10; i < 27; i++) q.Enqueue(cam, Frame(i));
        Assert.Equal([25, 26], Drain(q));
        Assert.Equal(10 + 15, cam.DroppedFrames);
    }

    [Fact]
    public void A_keyframe_too_big_to_arrive_in_time_even_on_an_idle_link_is_sent_if_it_has_not_waited()
    {
        var time = new ManualTime();
        var q = SlowLinkQueue(time);
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        q.Enqueue(cam, Frame(0));
        time.Advance(TimeSpan.FromMilliseconds(50));

        // 4 bytes at 4 B/s: 1 s on the wire, more than the 0.8 s target however soon it leaves; but
        // dropping it would show nothing ever.
        Assert.True(q.TryDequeue(out var key, bytesAhead: 0, bytesPerSecond: 4));
        Assert.Equal(0, Index(key));

        // The same keyframe after waiting (0.5 s old): late for a reason the next one may not have.
        q.Enqueue(cam, Frame(25));
        time.Advance(TimeSpan.FromSeconds(0.5));
        Assert.False(q.TryDequeue(out _, bytesAhead: 0, bytesPerSecond: 4));
        Assert.Equal(1, cam.DroppedFrames);
    }

    [Fact]
    public void On_a_fast_link_only_the_hard_bound_drops_however_old_the_frames()
    {
        var time = new ManualTime();
        var q = SlowLinkQueue(time);
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        for (var i = 0; i < 10; i++) q.Enqueue(cam, Frame(i));
        time.Advance(TimeSpan.FromSeconds(1.5)); // older than the target, younger than the bound: a stalled CPU, not a slow link

        var sent = new List<int>();
        while (q.TryDequeue(out var f, bytesAhead: 1_000_000, bytesPerSecond: 100_000_000)) sent.Add(Index(f));
        Assert.Equal(Enumerable.Range(0, 10), sent);
        Assert.Equal(0, cam.DroppedFrames);
    }

    // Before, frames queued ahead of a newer keyframe were dropped so that the keyframe went first:
    // every GOP then paid for its keyframe and got only the frames right after it.
    [Fact]
    public void On_a_slow_link_frames_that_arrive_in_time_are_sent_even_with_a_newer_keyframe_queued_behind_them()
    {
        var time = new ManualTime();
        var q = SlowLinkQueue(time);
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        for (var i = 0; i < 30; i++)
        {
            q.Enqueue(cam, Frame(i)); // keyframes 0 and 25, all young
            time.Advance(TimeSpan.FromMilliseconds(1));
        }

        var sent = new List<int>();
        while (q.TryDequeue(out var f, bytesAhead: 0, bytesPerSecond: 40)) sent.Add(Index(f)); // 0.1 s a frame, nothing ahead
        Assert.Equal(Enumerable.Range(0, 30), sent);
        Assert.Equal(0, cam.DroppedFrames);
    }

    // A camera like the slow-link benchmark's (30 fps, GOP 30, keyframes about 12 times a P-frame:
    // what x264 makes of GStreamer's "snow" at 2 Mbit/s) over a link of half its rate, the sender
    // handing over a frame whenever less than 50 ms of the link is unsent, as the edge does. Each GOP
    // needs 2 s of the link, so at most every other GOP can get through: sending whole GOPs and
    // skipping the one between delivers half the frames, where sending each GOP's keyframe and the
    // frames right after it delivers about a third.
    [Fact]
    public void On_a_link_half_the_stream_rate_whole_gops_get_through_with_one_skipped_between_and_none_late()
    {
        var run = SimulateLink(linkBytesPerSecond: 120_000, targetSeconds: 1.1, seconds: 20);

        Assert.True(run.Delivered.Count >= 0.45 * run.Produced, $"{run.Delivered.Count} of {run.Produced} frames delivered");
        Assert.True(run.MaxDelay <= TimeSpan.FromSeconds(1.1) + TimeSpan.FromMilliseconds(5), $"max delay {run.MaxDelay.TotalMilliseconds} ms");
        AssertWholeGopPrefixes(run.Delivered);
        Assert.True(run.LinkBusy >= 0.9, $"link busy {run.LinkBusy:P0}");
    }

    // A link a little slower than the stream: only the ends of some GOPs go, never whole GOPs.
    [Fact]
    public void On_a_link_a_little_slower_than_the_stream_most_frames_get_through_and_none_late()
    {
        var run = SimulateLink(linkBytesPerSecond: 216_000, targetSeconds: 1.1, seconds: 20);

        Assert.True(run.Delivered.Count >= 0.85 * run.Produced, $"{run.Delivered.Count} of {run.Produced} frames delivered");
        Assert.True(run.MaxDelay <= TimeSpan.FromSeconds(1.1) + TimeSpan.FromMilliseconds(5), $"max delay {run.MaxDelay.TotalMilliseconds} ms");
        AssertWholeGopPrefixes(run.Delivered);
    }

    private const int SimGop = 30, SimKeyframeBytes = 69_000, SimFrameBytes = 5_900;

    private sealed record SimRun(List<int> Delivered, int Produced, TimeSpan MaxDelay, double LinkBusy);

    // Virtual time in 1 ms steps: the camera queues frame i at i/30 s, the link delivers its rate
    // evenly, and the sender offers the queue the link's exact backlog and rate.
    private static SimRun SimulateLink(double linkBytesPerSecond, double targetSeconds, int seconds)
    {
        var time = new ManualTime();
        var q = SlowLinkQueue(time, targetSeconds);
        var cam = q.AddCamera("cam");
        q.SetTracks(cam, [Video]);
        var lowWatermark = linkBytesPerSecond * 0.05;
        double sentBytes = 0, deliveredBytes = 0;
        var busyMs = 0;
        var wire = new Queue<(int Index, double EndsAt, long QueuedAt)>();
        var queuedAt = new Dictionary<int, long>();
        var delivered = new List<int>();
        var maxDelay = TimeSpan.Zero;
        var produced = 0;
        for (var ms = 0; ms < seconds * 1000; ms++)
        {
            while (produced * 1000 / 30 <= ms)
            {
                var key = produced % SimGop == 0;
                var data = new byte[key ? SimKeyframeBytes : SimFrameBytes];
                BitConverter.TryWriteBytes(data, produced);
                queuedAt[produced] = time.GetTimestamp();
                q.Enqueue(cam, new AccessUnit(0, produced * 3000L, produced * 3000L, key, data));
                produced++;
            }
            while (sentBytes - deliveredBytes <= lowWatermark
                   && q.TryDequeue(out var f, (long)(sentBytes - deliveredBytes), linkBytesPerSecond))
            {
                sentBytes += f.Unit.Data.Length;
                wire.Enqueue((Index(f), sentBytes, queuedAt[Index(f)]));
            }
            if (sentBytes > deliveredBytes) busyMs++;
            deliveredBytes = Math.Min(sentBytes, deliveredBytes + linkBytesPerSecond / 1000);
            time.Advance(TimeSpan.FromMilliseconds(1));
            while (wire.Count > 0 && wire.Peek().EndsAt <= deliveredBytes + 1e-6)
            {
                var (index, _, at) = wire.Dequeue();
                delivered.Add(index);
                var delay = time.GetElapsedTime(at);
                if (delay > maxDelay) maxDelay = delay;
            }
        }
        return new SimRun(delivered, produced, maxDelay, busyMs / (seconds * 1000.0));
    }

    // The relay may only see GOPs from their keyframe on, each cut at most at its end.
    private static void AssertWholeGopPrefixes(List<int> delivered)
    {
        for (var k = 0; k < delivered.Count; k++)
        {
            var i = delivered[k];
            if (i % SimGop == 0) continue;
            Assert.True(k > 0 && delivered[k - 1] == i - 1, $"frame {i} delivered without the frame before it");
        }
    }

    private sealed class ManualTime : TimeProvider
    {
        private long _ticks = 1_000_000;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => Interlocked.Read(ref _ticks);
        public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
    }
}
