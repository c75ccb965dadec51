using System.Diagnostics;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>Issue 3, recovery: camera, relay and relay choice, with real processes killed and started again.</summary>
[Collection(EndToEnd.Collection)]
public class RecoveryTests(ITestOutputHelper output)
{
    private static RtspCameraOptions Camera => new() { Video = CameraVideo.H264, Width = 320, Height = 240, Gop = 25 };

    private static async Task AssertPlaysAsync(EndToEndStack stack, string when, TimeSpan timeout)
    {
        var probe = await EndToEnd.ProbeUntilPlayingAsync(stack.RtspUrl, timeout);
        Assert.True(probe.Succeeded && probe.Video!.FramesDecoded >= 25, $"{when}: no frames\n{probe}\n{stack.Logs}");
        Assert.Equal("h264", probe.Video!.CodecName);
        Assert.Equal((320, 240), (probe.Video.Width, probe.Video.Height));
        Assert.Empty(probe.DecoderErrors);
    }

    /// <summary>Probes with short timeouts until one fails: the viewer really lost the stream.</summary>
    private static async Task<ProbeResult> ProbeUntilFailingAsync(Uri url, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var probe = await Ffprobe.ProbeAsync(url, new ProbeOptions { VideoFrames = 25, Timeout = TimeSpan.FromSeconds(6) });
            if (!probe.Succeeded || probe.Video?.FramesDecoded < 25 || DateTime.UtcNow >= deadline) return probe;
            await Task.Delay(300);
        }
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task Camera_killed_and_started_again_plays_again()
    {
        await using var stack = await EndToEndStack.StartAsync(output, Camera);
        await AssertPlaysAsync(stack, "before the camera died", TimeSpan.FromSeconds(45));

        stack.Camera.Kill();
        var lost = await ProbeUntilFailingAsync(stack.RtspUrl, TimeSpan.FromSeconds(20));
        Assert.False(lost.Succeeded && lost.Video?.FramesDecoded >= 25, "the relay still served frames 20 s after the camera died\n" + lost);

        var clock = Stopwatch.StartNew();
        await stack.Camera.StartAgainAsync();
        await AssertPlaysAsync(stack, "after the camera came back", TimeSpan.FromSeconds(60));
        output.WriteLine($"camera back on port {stack.Camera.Port}: a new viewer decoded 25 frames {clock.Elapsed.TotalSeconds:0.0} s later");
    }

    // Found with real peers: the camera's new RTP session starts a new timestamp origin, and a viewer
    // that stayed on the relay saw RTP time jump back (-10 s, -32 s with B-frames) and then forward.
    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public Task Camera_that_ends_its_stream_and_comes_back_keeps_a_staying_viewer_s_RTP_time_advancing() =>
        AssertRtpTimeAdvancesAcrossCameraRestartAsync(Camera, gracefully: true);

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public Task Camera_with_B_frames_killed_and_started_again_keeps_a_staying_viewer_s_RTP_time_advancing() =>
        AssertRtpTimeAdvancesAcrossCameraRestartAsync(Camera with { BFrames = 2 }, gracefully: false);

    private async Task AssertRtpTimeAdvancesAcrossCameraRestartAsync(RtspCameraOptions camera, bool gracefully)
    {
        await using var stack = await EndToEndStack.StartAsync(output, camera);
        await AssertPlaysAsync(stack, "before the restart", TimeSpan.FromSeconds(45));
        await using var viewer = await RtpTimelineViewer.PlayAsync("127.0.0.1", stack.RtspPort, $"/{EndToEnd.Device}/{EndToEnd.CameraName}", EndToEnd.ViewerUser, EndToEnd.ViewerPassword);
        await Task.Delay(TimeSpan.FromSeconds(6));

        // SIGTERM makes the camera say RTCP BYE; a kill just drops the connection. Either way the edge
        // reconnects and the camera's new session starts its RTP time from a new origin.
        if (gracefully) await stack.Camera.StopAsync();
        else stack.Camera.Kill();
        await stack.Camera.StartAgainAsync();
        var restartedAt = viewer.Timeline.Count;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(40);
        while (viewer.Timeline.Count < restartedAt + 150 && DateTime.UtcNow < deadline) await Task.Delay(200);

        var timeline = viewer.Timeline;
        Assert.True(timeline.Count >= restartedAt + 150, $"the viewer got only {timeline.Count - restartedAt} pictures after the restart\n{stack.Logs}");
        // With B-frames the timestamps come in decode order, a few pictures out of presentation order:
        // measure against the latest seen so far, and allow that much.
        var steps = new List<string>();
        var latest = timeline[0].Timestamp;
        for (var i = 1; i < timeline.Count; i++)
        {
            var delta = unchecked((int)(timeline[i].Timestamp - timeline[i - 1].Timestamp));
            if (Math.Abs(delta) > 90_000 / 2) steps.Add($"#{i} at {timeline[i].At.TotalSeconds:0.00} s: {delta / 90_000.0:+0.00;-0.00} s");
            var behind = unchecked((int)(latest - timeline[i].Timestamp));
            Assert.True(behind < 90_000 / 2, $"RTP time went back {behind / 90_000.0:0.00} s at picture {i}; steps: {string.Join(", ", steps)}");
            if (behind < 0) latest = timeline[i].Timestamp;
        }
        output.WriteLine($"{timeline.Count} pictures, steps over 0.5 s: {string.Join(", ", steps)}");
        // RTP time advanced by about the wallclock time, the camera's downtime included (a pause).
        var rtp = unchecked((int)(timeline[^1].Timestamp - timeline[0].Timestamp)) / 90_000.0;
        var wall = (timeline[^1].At - timeline[0].At).TotalSeconds;
        Assert.InRange(rtp, wall - 1.5, wall + 1.5);
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task Relay_killed_and_started_again_on_the_same_ports_the_edge_reconnects_by_itself()
    {
        await using var stack = await EndToEndStack.StartAsync(output, Camera);
        await AssertPlaysAsync(stack, "before the relay died", TimeSpan.FromSeconds(45));
        var edgePid = stack.Edge!.Id;

        await stack.KillRelayAsync();
        var lost = await Ffprobe.ProbeAsync(stack.RtspUrl, new ProbeOptions { VideoFrames = 1, Timeout = TimeSpan.FromSeconds(5) });
        Assert.False(lost.Succeeded, "a probe succeeded with the relay dead\n" + lost);

        var clock = Stopwatch.StartNew();
        await stack.StartRelayAsync();
        await AssertPlaysAsync(stack, "after the relay came back", TimeSpan.FromSeconds(60));
        output.WriteLine($"relay back on {stack.HttpPort}/{stack.RtspPort}: a viewer decoded 25 frames {clock.Elapsed.TotalSeconds:0.0} s after the restart");
        // The same edge process did it: nobody restarted it.
        Assert.Equal(edgePid, stack.Edge!.Id);
        Assert.False(stack.Edge.HasExited, stack.Logs);
    }

    [RequiresFact(Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task With_the_first_relay_down_the_edge_uses_the_second()
    {
        var deadRelayPort = FreePort.Get(); // nothing listens there: relayA is down
        await using var stack = await EndToEndStack.StartAsync(output, Camera,
            relays: s => [$"ws://127.0.0.1:{deadRelayPort}/uplink", s.UplinkUrl]);
        Assert.Equal(2, stack.Relays.Count);
        Assert.Equal(stack.UplinkUrl, stack.Relays[1]);

        var clock = Stopwatch.StartNew();
        await AssertPlaysAsync(stack, "on relayB with relayA down", TimeSpan.FromSeconds(60));
        output.WriteLine($"relayA (port {deadRelayPort}) down: viewer on relayB decoded 25 frames {clock.Elapsed.TotalSeconds:0.0} s after the edge started");
        // In order: relayA was tried first and failed, then relayB took the uplink.
        var log = stack.Edge!.Output;
        var triedA = log.IndexOf($"Uplink to ws://127.0.0.1:{deadRelayPort}/uplink failed", StringComparison.Ordinal);
        var onB = log.IndexOf($"Uplink connected to {stack.UplinkUrl}", StringComparison.Ordinal);
        Assert.True(triedA >= 0 && onB > triedA, $"expected a failed attempt on relayA before connecting to relayB\n{stack.Logs}");
    }
}
