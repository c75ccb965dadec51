using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 3 behind NAT: the camera and pinhole-edge in a LAN namespace behind a masquerading router,
/// pinhole-relay and the viewer in the WAN namespace. Only the edge's outbound uplink crosses the NAT.
/// </summary>
[Collection(EndToEnd.Collection)]
public class NatTests(ITestOutputHelper output)
{
    [RequiresFact(Needs.NetworkNamespaces | Needs.RtspCamera | Needs.Ffmpeg)]
    public async Task Viewer_on_the_wan_cannot_reach_the_camera_but_plays_it_through_the_relay()
    {
        await using var nat = await NatTopology.CreateAsync();
        var dir = EndToEnd.NewWorkDir("nat");
        try
        {
            await using var camera = await RtspCamera.StartAsync(new RtspCameraOptions
            {
                Video = CameraVideo.H264, Audio = CameraAudio.Aac, Width = 320, Height = 240, Gop = 25,
                NetworkNamespace = nat.Lan, BindAddress = nat.LanAddress.ToString(),
            });
            const int httpPort = 8080, rtspPort = 8554, webPort = 8081;
            var wan = nat.WanAddress.ToString();
            await using var relay = await nat.StartInAsync(nat.Wan,
                EndToEnd.RelayStartInfo(EndToEnd.WriteRelayConfig(dir, wan, httpPort, rtspPort), output));
            await using var edge = await nat.StartInAsync(nat.Lan,
                EndToEnd.EdgeStartInfo(EndToEnd.WriteEdgeConfig(dir, [$"ws://{wan}:{httpPort}/uplink"], camera.Url.ToString(), webPort), webPort, output));
            string Logs() => EndToEnd.Describe(edge, relay) + "\n--- camera ---\n" + camera.Log;

            // The camera works (a viewer inside the LAN decodes it) ...
            var inLan = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { VideoFrames = 10, NetworkNamespace = nat.Lan });
            Assert.True(inLan.Succeeded && inLan.Video!.FramesDecoded >= 10, "the camera does not even play inside the LAN\n" + inLan);
            // ... but from the WAN its address cannot be reached: the router drops new inbound connections.
            var direct = await Ffprobe.ProbeAsync(camera.Url, new ProbeOptions { VideoFrames = 1, Timeout = TimeSpan.FromSeconds(8), NetworkNamespace = nat.Wan });
            Assert.False(direct.Succeeded, "a WAN viewer reached the camera's LAN address directly\n" + direct);

            var url = EndToEnd.RtspUrl(wan, rtspPort);
            var probe = await EndToEnd.ProbeUntilPlayingAsync(url, TimeSpan.FromSeconds(60), frames: 50, networkNamespace: nat.Wan);
            output.WriteLine($"direct {camera.Url} from the WAN: failed after {direct.Elapsed.TotalSeconds:0.0} s (exit {direct.ExitCode}, timed out {direct.TimedOut}: {string.Join(" / ", direct.ErrorLines)}); " +
                $"through the relay {url.Host}:{url.Port}: {probe.Video?.CodecName} {probe.Video?.Width}x{probe.Video?.Height} {probe.Video?.FramesDecoded} frames, {probe.Audio?.CodecName} {probe.Audio?.FramesDecoded} audio frames");
            Assert.True(probe.Succeeded, probe + "\n" + Logs());
            Assert.Equal("h264", probe.Video?.CodecName);
            Assert.Equal((320, 240), (probe.Video!.Width, probe.Video.Height));
            Assert.True(probe.Video.FramesDecoded >= 50, probe + "\n" + Logs());
            Assert.Equal("aac", probe.Audio?.CodecName);
            Assert.Empty(probe.DecoderErrors);
        }
        finally
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
        }
    }
}
