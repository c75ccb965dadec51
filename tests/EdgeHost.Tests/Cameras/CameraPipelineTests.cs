using Pinhole.EdgeHost.Cameras;
using Pinhole.EdgeHost.Supervision;
using Pinhole.Transport.Media;

namespace Pinhole.EdgeHost.Tests.Cameras;

public class CameraPipelineTests
{
    [Fact]
    public async Task Every_frame_is_a_heartbeat_and_reaches_the_output()
    {
        var output = new RecordingSink();
        var context = new RecordingContext();
        var pipeline = new CameraPipeline("door", async (sink, ct) =>
        {
            sink.OnTracks([new TrackInfo { Codec = MediaCodec.H264, ClockRate = 90_000, Width = 640, Height = 480 }]);
            for (var i = 0; i < 5; i++) sink.OnAccessUnit(new AccessUnit(0, i, i, i == 0, new byte[] { 1 }));
            await Task.Yield();
        }, output);

        await pipeline.RunAsync(context, CancellationToken.None);

        Assert.Equal("camera/door", pipeline.Name);
        Assert.Equal(TimeSpan.FromSeconds(10), pipeline.StallTimeout);
        Assert.Equal(5, context.Heartbeats);
        Assert.Equal(5, output.Frames);
        Assert.Contains("playing 640x480 H264", context.Statuses);
        Assert.Equal("source ended", context.Statuses[^1]);
    }

    [Fact]
    public async Task Source_failure_propagates_to_the_supervisor()
    {
        var pipeline = new CameraPipeline("door", (_, _) => Task.FromException(new IOException("camera unreachable")), new RecordingSink());
        var e = await Assert.ThrowsAsync<IOException>(() => pipeline.RunAsync(new RecordingContext(), CancellationToken.None));
        Assert.Equal("camera unreachable", e.Message);
    }

    private sealed class RecordingSink : IMediaSink
    {
        public int Frames;
        public void OnTracks(IReadOnlyList<TrackInfo> tracks) { }
        public void OnAccessUnit(in AccessUnit unit) => Frames++;
    }

    private sealed class RecordingContext : IPipelineContext
    {
        public int Heartbeats;
        public List<string> Statuses { get; } = [];
        public void Heartbeat() => Heartbeats++;
        public void SetStatus(string status) => Statuses.Add(status);
    }
}
