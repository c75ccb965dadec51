using Pinhole.Benchmarks.Scale;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// The scale benchmark's load generator (bench/Pinhole.Benchmarks/Scale, docs/benchmarks.md "scale") at a
/// tiny size, so that a change breaking it shows up in the suite rather than on the next benchmark run:
/// real uplink sessions stream stamped frames into a relay process, lightweight RTSP viewers play them, and
/// every viewer counts frames with a plausible added delay.
/// </summary>
[Collection(EndToEnd.Collection)]
public class LoadGeneratorTests(ITestOutputHelper output)
{
    private void Log(string line)
    {
        try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {line}"); }
        catch (InvalidOperationException) { }
    }

    private static LoadOptions Tiny(int relays, Action<string> log) => new()
    {
        Relays = relays,
        Devices = 2,
        Viewers = 4,
        Window = TimeSpan.FromSeconds(2),
        Warmup = TimeSpan.FromSeconds(1),
        RelayDll = EndToEnd.RelayDll,
        Log = log,
    };

    private void Check(LoadResult result)
    {
        Log($"{result.FramesDelivered} of {result.FramesExpected} frames, delays {string.Join(", ", result.DelaysMs.Take(5).Select(d => d.ToString("0.0", System.Globalization.CultureInfo.InvariantCulture)))} ms …");
        Assert.Empty(result.Failures);
        Assert.Equal(result.Options.Devices, result.DevicesConnected);
        Assert.Equal(result.Options.Viewers, result.ViewersPlaying);
        Assert.Equal(result.Options.Viewers, result.ViewersWithFrames);
        // 2 s of 25 fps to each of 4 viewers; a loaded machine may lose a few at the window's edges, not most.
        Assert.InRange(result.FramesExpected, 4 * 25, 4 * 25 * 3);
        Assert.True(result.DeliveredShare > 0.8, $"{result.FramesDelivered} of {result.FramesExpected} frames delivered");
        Assert.All(result.DelaysMs, d => Assert.InRange(d, 0, 5_000));
        Assert.All(result.Relays, r => Assert.True(r.WithViewers.RssMb > 0 && r.WithViewers.CpuCores > 0, $"{r.Name}: no CPU or RSS read from /proc"));
    }

    [RequiresFact(Needs.Ffmpeg)]
    public async Task Two_devices_and_four_viewers_on_one_relay_every_viewer_gets_stamped_frames()
    {
        var clip = StampedClip.Record(seconds: 4);
        var result = await LoadRun.RunAsync(clip, Tiny(1, Log), CancellationToken.None);
        Check(result);
        Assert.Equal(0, result.ViewersRedirected);
    }

    [RequiresFact(Needs.Ffmpeg | Needs.HaProxy | Needs.Postgres)]
    public async Task Two_relays_behind_HAProxy_viewers_follow_the_redirect_to_the_owner_and_get_frames()
    {
        var clip = StampedClip.Record(seconds: 4);
        var result = await LoadRun.RunAsync(clip, Tiny(2, Log), CancellationToken.None);
        Check(result);
        Assert.Equal(result.Options.Devices, result.Relays.Sum(r => r.Devices));
    }
}
