using Pinhole.EdgeHost.Cameras;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Uplink;
using Pinhole.Streaming;
using Pinhole.Testing;
using Pinhole.Transport.Media;
using System.Diagnostics.Metrics;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>Real peer end to end: GStreamer RTSP camera -> CameraPipeline -> UplinkClient -> relay stream hub.</summary>
public class CameraToRelayTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Rtsp_camera_reaches_the_relay_stream_with_its_parameter_sets_and_keyframes()
    {
        Assert.True(RtspCamera.SkipReason is null, $"the GStreamer RTSP test camera is part of the build environment: {RtspCamera.SkipReason}");
        await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions { Width = 320, Height = 240, Fps = 25 });
        await using var relay = await TestRelay.StartAsync(output);
        using var logging = TestLogging.For(output, "edge ");
        var uplink = new UplinkClient(new UplinkClientOptions { DeviceId = "gw1", Token = "secret-gw1", Relays = [relay.Uplink] }, new Meter("test"), logging);
        var pipeline = CameraPipeline.Create(new CameraConfig { Name = "door", Source = camera.Url.ToString() }, uplink, logging);
        var stream = relay.Streams.GetOrAdd("gw1", "door");
        await using var recorder = new StreamRecorder(stream);
        using var cts = new CancellationTokenSource();
        var context = new CountingContext();
        var uplinkRun = uplink.RunAsync(new CountingContext(), cts.Token);
        var cameraRun = pipeline.RunAsync(context, cts.Token);

        try
        {
            await recorder.WaitForAsync(r => r.Events.Count(e => e.Event.Kind == MediaEventKind.Frame) >= 50, TimeSpan.FromSeconds(30), "50 frames from the RTSP camera");
        }
        finally
        {
            await cts.CancelAsync();
            await Task.WhenAll(uplinkRun, cameraRun).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        Assert.Equal("camera/door", pipeline.Name);
        var tracks = recorder.Events.First(e => e.Event.Kind == MediaEventKind.Tracks).Event.Tracks!;
        var video = Assert.Single(tracks, t => t.IsVideo);
        Assert.Equal(MediaCodec.H264, video.Codec);
        Assert.Equal((320, 240), (video.Width, video.Height));
        Assert.Equal(2, video.ParameterSets.Count);
        Assert.Equal(7, video.ParameterSets[0].Span[0] & 0x1f); // SPS
        var frames = recorder.Events.Where(e => e.Event.Kind == MediaEventKind.Frame).Select(e => e.Event.Unit).ToList();
        Assert.True(frames[0].IsKeyframe, "the relay's first frame must be a keyframe");
        Assert.True(frames.Zip(frames.Skip(1)).All(p => p.Second.Dts > p.First.Dts), "DTS increases");
        Assert.True(context.Heartbeats >= 50, $"{context.Heartbeats} heartbeats for 50+ frames");
        Assert.Contains(context.Statuses, s => s.StartsWith("playing 320x240 H264", StringComparison.Ordinal));
        output.WriteLine($"{frames.Count} frames, {frames.Count(f => f.IsKeyframe)} keyframes, dropped {uplink.DroppedFrames("door")}");
    }

    private sealed class CountingContext : IPipelineContext
    {
        private int _heartbeats;
        public int Heartbeats => Volatile.Read(ref _heartbeats);
        public List<string> Statuses { get; } = [];
        public void Heartbeat() => Interlocked.Increment(ref _heartbeats);
        public void SetStatus(string status) { lock (Statuses) Statuses.Add(status); }
    }
}
