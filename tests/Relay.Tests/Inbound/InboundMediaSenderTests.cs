using Pinhole.Relay.Inbound;
using Pinhole.Streaming;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Tests.Inbound;

/// <summary>The sender of a published stream down the uplink keeps memory bounded when the downlink is
/// slow: it skips whole GOPs (the device resumes at a keyframe) instead of queueing without limit.</summary>
public class InboundMediaSenderTests
{
    private static readonly TrackInfo Video = new()
    {
        Codec = MediaCodec.H264, ClockRate = 90_000, Width = 320, Height = 240,
        ParameterSets = [new byte[] { 0x67, 0x42, 0xc0, 0x1e }, new byte[] { 0x68, 0xce, 0x3c, 0x80 }],
    };

    // 25 fps, a keyframe every 25 frames; IDR and non-IDR slices whose first_mb_in_slice is 0.
    private static AccessUnit Frame(int n) => new(0, n * 3600L, n * 3600L, n % 25 == 0,
        n % 25 == 0 ? new byte[] { 0, 0, 0, 3, 0x65, 0x88, (byte)n } : new byte[] { 0, 0, 0, 3, 0x41, 0x9a, (byte)n });

    [Fact]
    public async Task A_stalled_downlink_drops_whole_gops_and_the_device_resumes_at_a_keyframe()
    {
        var stream = new MediaStreamRegistry().GetOrAdd("gw1", "lobby");
        stream.OnTracks([Video]);
        var subscription = stream.Subscribe()!;
        var sent = new List<UplinkMessage>();
        var downlink = new SemaphoreSlim(0);
        var firstFrame = new TaskCompletionSource();
        using var session = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var publication = new CancellationTokenSource();
        var sender = InboundMediaSender.RunAsync(subscription, 7, async (m, ct) =>
        {
            if (m is InboundFrame)
            {
                firstFrame.TrySetResult();
                await downlink.WaitAsync(ct); // the downlink takes one frame per release
            }
            lock (sent) sent.Add(m);
        }, publication.Token, session.Token);

        // 10 s of video arrive while the downlink takes nothing (it holds the first frame).
        for (var n = 0; n < 250; n++) stream.OnAccessUnit(Frame(n));
        await firstFrame.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(subscription.QueuedCount <= 2 * 25 + 1, $"{subscription.QueuedCount} frames queued for a stalled downlink");
        Assert.True(subscription.DroppedFrames > 0);

        // The downlink recovers: everything still queued goes out, then the publisher stops.
        downlink.Release(1000);
        stream.OnAccessUnit(Frame(250));
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (subscription.QueuedCount > 0 && DateTime.UtcNow < deadline) await Task.Delay(10);
        stream.SetOffline();
        await sender.WaitAsync(TimeSpan.FromSeconds(10));

        List<UplinkMessage> messages;
        lock (sent) messages = [.. sent];
        var announce = Assert.IsType<InboundAnnounce>(messages[0]);
        Assert.Equal((7, "lobby"), (announce.StreamId, announce.Name));
        Assert.IsType<InboundEnd>(messages[^1]);
        var frames = messages.OfType<InboundFrame>().Select(f => f.Unit).ToList();
        Assert.InRange(frames.Count, 2, 250);
        // Every gap in what was sent ends at a keyframe: the device never gets a frame whose references were dropped.
        for (var i = 1; i < frames.Count; i++)
            if (frames[i].Pts != frames[i - 1].Pts + 3600)
                Assert.True(frames[i].IsKeyframe, $"frame at {frames[i].Pts / 3600} follows {frames[i - 1].Pts / 3600} without being a keyframe");
        Assert.True(frames[0].IsKeyframe);
    }

    [Fact]
    public async Task A_publisher_that_stops_before_sending_tracks_ends_the_sender_without_messages()
    {
        var stream = new MediaStreamRegistry().GetOrAdd("gw1", "lobby");
        var subscription = stream.Subscribe()!;
        var sent = 0;
        using var publication = new CancellationTokenSource();
        var sender = InboundMediaSender.RunAsync(subscription, 1, (_, _) => { sent++; return ValueTask.CompletedTask; }, publication.Token, CancellationToken.None);
        await Task.Delay(50);
        Assert.False(sender.IsCompleted); // offline only because nothing arrived yet
        await publication.CancelAsync();
        await sender.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(0, sent);
        Assert.Equal(0, stream.ViewerCount);
    }
}
