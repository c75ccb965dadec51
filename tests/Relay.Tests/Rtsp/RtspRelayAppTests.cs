using Pinhole.Testing;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Rtsp;
using Pinhole.Streaming.Rtsp;
using Pinhole.Streaming;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.Rtsp;

/// <summary>The RTSP server as the relay host runs it: configured from relay.json, metrics on /metrics.</summary>
public sealed class RtspRelayAppTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-relay-rtsp-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [RequiresFact(Needs.Ffmpeg)]
    public async Task The_relay_serves_rtsp_on_its_configured_address_with_its_viewers()
    {
        var config = new RelayConfig
        {
            Http = "http://127.0.0.1:0",
            Rtsp = "127.0.0.1:0",
            DataDir = _dir,
            Viewers = [new ViewerConfig { User = "bob", Password = "hunter2" }],
            Metrics = new MetricsConfig { Public = true },
        };
        await using var relay = await RelayApp.StartAsync(config);
        var rtsp = relay.Services.GetRequiredService<RtspServer>();
        var port = rtsp.LocalEndPoint!.Port;
        Assert.NotEqual(0, port);
        await using var feeder = new StreamFeeder(relay.Services.GetRequiredService<MediaStreamRegistry>().GetOrAdd("gw1", "cam"), TestMedia.H264).Start();

        var (streams, errors, code) = await FfProbe.ProbeAsync($"rtsp://bob:hunter2@127.0.0.1:{port}/gw1/cam", "tcp", 1);
        output.WriteLine(string.Join("\n", streams) + "\n" + errors);
        Assert.Equal(0, code);
        Assert.Equal("h264", Assert.Single(streams).CodecName);
        Assert.True(streams[0].Frames >= 20);

        var (_, wrongErrors, wrongCode) = await FfProbe.ProbeAsync($"rtsp://bob:nope@127.0.0.1:{port}/gw1/cam", "tcp", 1);
        Assert.NotEqual(0, wrongCode);
        Assert.Contains("401", wrongErrors);

        using var http = new HttpClient { BaseAddress = relay.HttpUri };
        var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Contains("pinhole_rtsp_sessions_total{} 1", metrics);
        Assert.Contains("pinhole_rtsp_auth_failures_total{} 1", metrics);
        Assert.Matches(@"pinhole_rtsp_frames_sent_total\{\} [1-9]\d+", metrics);
    }
}
