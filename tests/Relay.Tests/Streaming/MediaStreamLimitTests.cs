using Pinhole.Streaming;
using Pinhole.Testing.Time;
using Pinhole.Transport.Media;

namespace Pinhole.Relay.Tests.Streaming;

/// <summary>The limits that span streams: viewers per user, cameras per device, all GOP caches' memory, departed devices.</summary>
public class MediaStreamLimitTests
{
    private static readonly TrackInfo Video = new() { Codec = MediaCodec.H264, ClockRate = 90_000, Width = 640, Height = 480 };

    private static AccessUnit Frame(long dts, bool key, int size) => new(0, dts, dts, key, new byte[size]);

    [Fact]
    public void One_user_cannot_take_every_viewer_slot()
    {
        var registry = new MediaStreamRegistry(new MediaStreamLimits { MaxViewersPerStream = 10, MaxViewersPerUser = 3 });
        var stream = registry.GetOrAdd("gw1", "cam");
        var mallory = Enumerable.Range(0, 10).Select(_ => stream.Subscribe("mallory")).ToList();
        Assert.Equal(3, mallory.Count(s => s is not null));
        using var alice = stream.Subscribe("alice");
        Assert.NotNull(alice);
        Assert.Equal(3, registry.ViewersOf("mallory"));

        // A viewer that leaves gives its slot back.
        mallory[0]!.Dispose();
        Assert.Equal(2, registry.ViewersOf("mallory"));
        using var again = stream.Subscribe("mallory");
        Assert.NotNull(again);
        foreach (var s in mallory) s?.Dispose();
        Assert.Equal(2, registry.TotalViewers); // alice and again
    }

    [Fact]
    public void A_device_gets_at_most_its_cameras()
    {
        var registry = new MediaStreamRegistry(new MediaStreamLimits { MaxCamerasPerDevice = 4 });
        var added = Enumerable.Range(0, 100).Count(i => registry.TryGetOrAdd("gw1", "cam" + i, out _));
        Assert.Equal(4, added);
        Assert.True(registry.TryGetOrAdd("gw1", "cam0", out _), "a camera it has is found");
        Assert.True(registry.TryGetOrAdd("gw2", "cam0", out _), "another device has its own allowance");
        Assert.Equal(5, registry.Count);
    }

    [Fact]
    public void All_gop_caches_together_stay_within_the_memory_budget()
    {
        const int frame = 100_000;
        var registry = new MediaStreamRegistry(new MediaStreamLimits { GopCacheMemory = 2_000_000, MaxGopBytes = 16 * 1024 * 1024 });
        var streams = Enumerable.Range(0, 50).Select(i => registry.GetOrAdd("gw" + i, "cam")).ToList();
        foreach (var s in streams) s.OnTracks([Video]);
        // Each stream sends a 1 MB GOP: 50 MB unbounded before; now the total stays at 2 MB.
        for (var f = 0; f < 10; f++)
            foreach (var s in streams) s.OnAccessUnit(Frame(f * 3000, key: f == 0, frame));
        Assert.True(registry.GopCacheBytes <= 2_000_000, $"{registry.GopCacheBytes} bytes cached");
        Assert.Equal(registry.GopCacheBytes, streams.Sum(s => s.GopBytes));
        // A stream whose GOP did not fit caches the next one when there is room again.
        foreach (var s in streams.Take(25)) s.SetOffline();
        Assert.Equal(registry.GopCacheBytes, streams.Sum(s => s.GopBytes));
        var last = streams[^1];
        last.OnAccessUnit(Frame(100_000, key: true, frame));
        Assert.Equal(frame, last.GopBytes);
    }

    [Fact]
    public void Streams_of_a_device_that_left_are_forgotten_after_the_grace_period_unless_watched()
    {
        var time = new ManualTimeProvider();
        var registry = new MediaStreamRegistry(new MediaStreamLimits { DepartedStreamGrace = TimeSpan.FromMinutes(10) }, time: time);
        var watched = registry.GetOrAdd("gw1", "watched");
        var idle = registry.GetOrAdd("gw1", "idle");
        var other = registry.GetOrAdd("gw2", "cam");
        foreach (var s in new[] { watched, idle, other }) s.OnTracks([Video]);
        using var viewer = watched.Subscribe("alice");

        registry.SetDeviceOffline("gw1");
        time.Advance(TimeSpan.FromMinutes(9));
        Assert.Equal(3, registry.Count);
        time.Advance(TimeSpan.FromMinutes(2)); // the timer set by SetDeviceOffline fires
        Assert.False(registry.TryGet("gw1", "idle", out _));
        Assert.True(registry.TryGet("gw1", "watched", out _), "a stream someone waits on is kept");
        Assert.True(registry.TryGet("gw2", "cam", out _));
    }
}
