using Pinhole.Streaming;
using Pinhole.Transport.Media;

namespace Pinhole.Relay.Tests.Streaming;

public class MediaStreamTests
{
    private static readonly TrackInfo Video = new() { Codec = MediaCodec.H264, ClockRate = 90_000, Width = 640, Height = 480 };
    private static readonly TrackInfo Audio = new() { Codec = MediaCodec.Aac, ClockRate = 48_000, SampleRate = 48_000, Channels = 1 };

    private static AccessUnit Frame(long dts, bool key) => new(0, dts, dts, key, new byte[] { 0, 0, 0, 1, key ? (byte)0x65 : (byte)0x41 });

    private static List<MediaEvent> Drain(MediaSubscription sub)
    {
        var list = new List<MediaEvent>();
        while (sub.TryRead(out var e)) list.Add(e);
        return list;
    }

    [Fact]
    public void New_viewer_starts_with_tracks_and_the_cached_gop()
    {
        var registry = new MediaStreamRegistry();
        var stream = registry.GetOrAdd("gw1", "cam");
        stream.OnTracks([Video, Audio]);
        stream.OnAccessUnit(Frame(0, key: false)); // before the first keyframe: not cacheable
        stream.OnAccessUnit(Frame(3000, key: true));
        stream.OnAccessUnit(Frame(6000, key: false));
        stream.OnAccessUnit(new AccessUnit(1, 100, 100, true, new byte[] { 1 }));

        using var sub = stream.Subscribe()!;
        var events = Drain(sub);

        Assert.Equal(MediaEventKind.Tracks, events[0].Kind);
        Assert.Equal([3000L, 6000L, 100L], events.Skip(1).Select(e => e.Unit.Dts));
        Assert.True(events[1].Unit.IsKeyframe);
    }

    [Fact]
    public void Slow_viewer_skips_to_next_keyframe_and_never_sees_a_broken_gop()
    {
        var registry = new MediaStreamRegistry(new MediaStreamLimits { ViewerQueueDuration = TimeSpan.FromSeconds(1) });
        var stream = registry.GetOrAdd("gw1", "cam");
        stream.OnTracks([Video]);
        using var slow = stream.Subscribe()!;
        using var fast = stream.Subscribe()!;
        Drain(slow);
        Drain(fast);

        // 4.4 s of 25 fps video with a keyframe every second; "fast" reads as it goes, "slow" never reads.
        var fastFrames = 0;
        for (var i = 0; i < 110; i++)
        {
            stream.OnAccessUnit(Frame(i * 3600L, key: i % 25 == 0));
            fastFrames += Drain(fast).Count;
        }

        Assert.Equal(110, fastFrames);
        Assert.Equal(0, fast.DroppedFrames);
        var kept = Drain(slow);
        Assert.True(slow.DroppedFrames > 0);
        Assert.NotEmpty(kept);
        Assert.True(kept.Count < 110);
        Assert.True(kept[0].Unit.IsKeyframe, "the slow viewer must resume on a keyframe");
        Assert.Equal(100 * 3600L, kept[0].Unit.Dts);
        // What is kept is contiguous from that keyframe on.
        for (var i = 1; i < kept.Count; i++) Assert.Equal(kept[i - 1].Unit.Dts + 3600, kept[i].Unit.Dts);
        Assert.Equal(110, kept.Count + slow.DroppedFrames);
    }

    [Fact]
    public void Offline_then_new_tracks_reach_the_viewer_in_order()
    {
        var registry = new MediaStreamRegistry();
        var stream = registry.GetOrAdd("gw1", "cam");
        stream.OnTracks([Video]);
        stream.OnAccessUnit(Frame(0, key: true));
        using var sub = stream.Subscribe()!;
        Drain(sub);

        registry.SetDeviceOffline("gw1");
        Assert.False(stream.IsOnline);
        var wider = Video with { Width = 1280, Height = 720 };
        stream.OnTracks([wider]);
        stream.OnAccessUnit(Frame(3600, key: true));

        var events = Drain(sub);
        Assert.Equal([MediaEventKind.Offline, MediaEventKind.Tracks, MediaEventKind.Frame], events.Select(e => e.Kind));
        Assert.Equal(1280, events[1].Tracks![0].Width);
        Assert.True(stream.IsOnline);
    }

    // The edge re-announces a camera whose source restarted (same tracks, a new clock origin): frames
    // from before must not be replayed to a new viewer ahead of frames from after, and a viewer
    // that stays is told, so it carries its own timeline on.
    [Fact]
    public void The_same_tracks_announced_again_mark_a_restart_and_drop_the_cached_gop()
    {
        var registry = new MediaStreamRegistry();
        var stream = registry.GetOrAdd("gw1", "cam");
        stream.OnTracks([Video]);
        stream.OnAccessUnit(Frame(900_000, key: true));
        stream.OnAccessUnit(Frame(903_600, key: false));
        using var staying = stream.Subscribe()!;
        Drain(staying);

        stream.OnTracks([Video]); // the camera came back: its clock starts at 0 again
        stream.OnAccessUnit(Frame(3600, key: false)); // a picture before the first keyframe of the new session

        Assert.Equal([MediaEventKind.Restart, MediaEventKind.Frame], Drain(staying).Select(e => e.Kind));
        using var newcomer = stream.Subscribe()!;
        Assert.Equal([MediaEventKind.Tracks], Drain(newcomer).Select(e => e.Kind));
        stream.OnAccessUnit(Frame(7200, key: true));
        using var later = stream.Subscribe()!;
        Assert.Equal([7200L], Drain(later).Where(e => e.Kind == MediaEventKind.Frame).Select(e => e.Unit.Dts));
    }

    [Fact]
    public void Viewer_limits_are_enforced_per_stream_and_in_total()
    {
        var registry = new MediaStreamRegistry(new MediaStreamLimits { MaxViewersPerStream = 2 }, maxViewersTotal: 3);
        var a = registry.GetOrAdd("gw1", "a");
        var b = registry.GetOrAdd("gw1", "b");
        using var a1 = a.Subscribe();
        using var a2 = a.Subscribe();
        Assert.Null(a.Subscribe());
        using var b1 = b.Subscribe();
        Assert.Null(b.Subscribe());
        a1!.Dispose();
        Assert.NotNull(b.Subscribe());
    }

    [Fact]
    public async Task ReadAsync_wakes_when_a_frame_arrives()
    {
        var stream = new MediaStreamRegistry().GetOrAdd("gw1", "cam");
        stream.OnTracks([Video]);
        using var sub = stream.Subscribe()!;
        Assert.Equal(MediaEventKind.Tracks, (await sub.ReadAsync(CancellationToken.None)).Kind);
        var pending = sub.ReadAsync(CancellationToken.None).AsTask();
        Assert.False(pending.IsCompleted);
        stream.OnAccessUnit(Frame(0, key: true));
        var evt = await pending.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(MediaEventKind.Frame, evt.Kind);
    }

    // Issue #21: pictures of several slices. H.264 slices whose first_mb_in_slice is 0 (0x88: the
    // ue(v) "1") or not (0x40: a longer code), behind 4-byte lengths as an AccessUnit holds them.
    private static byte[] Nal(byte header, byte firstSliceHeaderByte) => [header, firstSliceHeaderByte, 0x5A, 0x5A];

    private static byte[] LengthPrefixed(params byte[][] nals) =>
        [.. nals.SelectMany(n => new byte[] { 0, 0, (byte)(n.Length >> 8), (byte)n.Length }.Concat(n))];

    [Fact]
    public void Gop_cache_never_starts_at_the_bottom_half_of_a_keyframe_an_older_edge_cut_at_the_marker()
    {
        var registry = new MediaStreamRegistry();
        var stream = registry.GetOrAdd("gw1", "cam");
        stream.OnTracks([Video]);
        var top = LengthPrefixed(Nal(0x65, 0x88));
        var bottom = LengthPrefixed(Nal(0x65, 0x40));
        stream.OnAccessUnit(new AccessUnit(0, 3600, 3600, true, top));
        stream.OnAccessUnit(new AccessUnit(0, 3600, 3600, true, bottom)); // same picture: not a new GOP
        stream.OnAccessUnit(new AccessUnit(0, 7200, 7200, false, LengthPrefixed(Nal(0x41, 0x88))));

        using var sub = stream.Subscribe()!;
        var frames = Drain(sub).Where(e => e.Kind == MediaEventKind.Frame).Select(e => e.Unit).ToList();
        Assert.Equal(3, frames.Count);
        Assert.Equal(top, frames[0].Data.ToArray());
        Assert.Equal(bottom, frames[1].Data.ToArray());
    }

    [Fact]
    public void Gop_cache_starts_at_the_whole_keyframe_of_a_source_that_marks_every_slice()
    {
        // The edge's depacketizer fed what live555ProxyServer sends (marker after each slice), into the hub.
        var sps = Convert.FromBase64String("Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAZR4sXUA==");
        var pps = Convert.FromBase64String("aM48gA==");
        var registry = new MediaStreamRegistry();
        var stream = registry.GetOrAdd("gw1", "cam");
        var mux = new Pinhole.Transport.Rtp.MediaSinkMultiplexer(stream, 1);
        var dep = new Pinhole.Transport.H264.H264Depacketizer(0, [sps, pps]);
        ushort seq = 0;
        void Send(long ts, byte[] nal) => dep.Push(new Pinhole.Transport.Rtp.RtpPacket { SequenceNumber = seq++, Timestamp = (uint)ts, Marker = true, PayloadType = 96, Payload = nal }, mux);
        for (var picture = 0; picture < 8; picture++)
        {
            var type = picture % 4 == 0 ? (byte)0x65 : (byte)0x41;
            Send(picture * 3600L, Nal(type, 0x88));
            Send(picture * 3600L, Nal(type, 0x40));
        }
        using var sub = stream.Subscribe()!;
        var frames = Drain(sub).Where(e => e.Kind == MediaEventKind.Frame).Select(e => e.Unit).ToList();
        // The GOP from the keyframe at picture 4: pictures 4, 5, 6 (7 waits for the next packet), each whole.
        Assert.Equal([4 * 3600L, 5 * 3600L, 6 * 3600L], frames.Select(f => f.Pts));
        Assert.True(frames[0].IsKeyframe);
        Assert.Equal(LengthPrefixed(Nal(0x65, 0x88), Nal(0x65, 0x40)), frames[0].Data.ToArray());
    }

    [Fact]
    public void A_lagging_viewer_resumes_at_the_top_half_of_a_split_keyframe_not_at_its_bottom_half()
    {
        // A queue of 27 items overflows on the bottom half of a keyframe (26 frames then a top half
        // fill it): dropping there must not leave the viewer starting at that bottom half.
        var registry = new MediaStreamRegistry(new MediaStreamLimits { ViewerQueueDuration = TimeSpan.FromSeconds(60), ViewerQueueMaxItems = 27 });
        var stream = registry.GetOrAdd("gw1", "cam");
        stream.OnTracks([Video]);
        using var slow = stream.Subscribe()!;
        Drain(slow);
        // An older edge: every keyframe arrives as a top half and a bottom half, both flagged as keyframes.
        for (var i = 0; i < 110; i++)
        {
            var key = i % 25 == 0;
            stream.OnAccessUnit(new AccessUnit(0, i * 3600L, i * 3600L, key, LengthPrefixed(Nal(key ? (byte)0x65 : (byte)0x41, 0x88))));
            if (key) stream.OnAccessUnit(new AccessUnit(0, i * 3600L, i * 3600L, true, LengthPrefixed(Nal(0x65, 0x40))));
        }
        var kept = Drain(slow).Where(e => e.Kind == MediaEventKind.Frame).Select(e => e.Unit).ToList();
        Assert.True(slow.DroppedFrames > 0);
        Assert.True(kept[0].IsKeyframe);
        Assert.Equal(LengthPrefixed(Nal(0x65, 0x88)), kept[0].Data.ToArray());
        Assert.Equal(LengthPrefixed(Nal(0x65, 0x40)), kept[1].Data.ToArray());
    }
}
