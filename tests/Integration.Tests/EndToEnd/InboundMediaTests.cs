using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// Issue 15, WAN to LAN media: ffmpeg publishes an H.264+AAC file to the relay with RTSP
/// ANNOUNCE/RECORD (<c>rtsp://RELAY/gw1/in/NAME</c>); the relay sends it down the uplink and the edge's
/// RTSP server (edge.json <c>rtspServer</c>) re-serves it as <c>rtsp://EDGE/NAME</c>, where ffprobe
/// decodes both streams. Relay and edge are the real processes, on loopback like the other
/// end-to-end tests. Also: who may publish (401 without credentials, 403 without the publish right,
/// 404 for an unknown device, 400 for a broken SDP).
/// </summary>
[Collection(EndToEnd.Collection)]
public class InboundMediaTests(ITestOutputHelper output)
{
    private const string Publisher = "publisher";
    private const string PublisherPassword = "pub-pass";
    private const string LanUser = "nvr";
    private const string LanPassword = "lan-pass";

    private const string Sdp =
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
        "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n";

    [RequiresFact(Needs.Ffmpeg)]
    public async Task A_stream_published_to_the_relay_is_decoded_from_the_edge_rtsp_server()
    {
        var dir = EndToEnd.NewWorkDir("inbound");
        int http = FreePort.Get(), rtsp = FreePort.Get(), web = FreePort.Get(), lan = FreePort.Get();
        PeerProcess? relay = null, edge = null;
        Process? ffmpeg = null;
        var ffmpegLog = new StringBuilder();
        try
        {
            // 6 s of 320x240 H.264 (a keyframe a second) with 48 kHz AAC, looped by the publisher.
            var clip = Path.Combine(dir, "clip.mp4");
            await Command.RunCheckedAsync("ffmpeg", ["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
                "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast",
                "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac", "-b:a", "64k", "-y", clip], TimeSpan.FromSeconds(60));

            var relayConfig = EndToEnd.WriteRelayConfig(dir, "127.0.0.1", http, rtsp, new Dictionary<string, object>
            {
                ["viewers"] = new object[]
                {
                    new { user = EndToEnd.ViewerUser, password = EndToEnd.ViewerPassword },
                    new { user = Publisher, password = PublisherPassword, publish = true },
                },
            });
            var edgeConfig = EndToEnd.WriteEdgeConfig(dir, [$"ws://127.0.0.1:{http}/uplink"], "rtsp://127.0.0.1:9/none", web);
            var json = JsonNode.Parse(File.ReadAllText(edgeConfig))!.AsObject();
            json["cameras"] = new JsonArray();
            json["rtspServer"] = JsonNode.Parse(JsonSerializer.Serialize(new { listen = $"127.0.0.1:{lan}", users = new[] { new { name = LanUser, password = LanPassword } } }));
            File.WriteAllText(edgeConfig, json.ToJsonString());

            relay = await PeerProcess.StartAsync(EndToEnd.RelayStartInfo(relayConfig, output));
            edge = await PeerProcess.StartAsync(EndToEnd.EdgeStartInfo(edgeConfig, web, output));

            // Who may publish: decided before the SDP is looked at.
            Assert.Equal(401, (await AnnounceAsync(rtsp, "/gw1/in/lobby", null, Sdp)).Status);
            var viewer = await AnnounceAsync(rtsp, "/gw1/in/lobby", (EndToEnd.ViewerUser, EndToEnd.ViewerPassword), Sdp);
            Assert.Equal(403, viewer.Status);
            var unknown = await AnnounceAsync(rtsp, "/nosuch/in/lobby", (Publisher, PublisherPassword), Sdp);
            Assert.Equal(404, unknown.Status);
            output.WriteLine($"viewer: {viewer.Status} {viewer.Reason}; unknown device: {unknown.Status} {unknown.Reason}");

            // Until the edge's uplink is up the relay says 503 (offline); then a broken SDP is 400.
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            (int Status, string Reason) bad;
            while (true)
            {
                bad = await AnnounceAsync(rtsp, "/gw1/in/lobby", (Publisher, PublisherPassword), "this is not SDP");
                if (bad.Status != 503 || DateTime.UtcNow > deadline) break;
                await Task.Delay(300);
            }
            output.WriteLine($"broken SDP: {bad.Status} {bad.Reason}");
            Assert.Equal(400, bad.Status);

            ffmpeg = Process.Start(new ProcessStartInfo("ffmpeg",
                ["-hide_banner", "-loglevel", "warning", "-re", "-stream_loop", "-1", "-i", clip, "-c", "copy",
                 "-f", "rtsp", "-rtsp_transport", "tcp", $"rtsp://{Publisher}:{PublisherPassword}@127.0.0.1:{rtsp}/gw1/in/lobby"])
            {
                RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false,
            })!;
            ffmpeg.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (ffmpegLog) ffmpegLog.AppendLine(e.Data); };
            ffmpeg.BeginErrorReadLine();

            var url = new Uri($"rtsp://{LanUser}:{LanPassword}@127.0.0.1:{lan}/lobby");
            var probe = await EndToEnd.ProbeUntilPlayingAsync(url, TimeSpan.FromSeconds(45), frames: 50);
            output.WriteLine($"from the edge: {probe.Video?.CodecName} {probe.Video?.Width}x{probe.Video?.Height} {probe.Video?.FramesDecoded} frames, " +
                $"{probe.Audio?.CodecName} {probe.Audio?.SampleRate} Hz {probe.Audio?.FramesDecoded} frames in {probe.Elapsed.TotalSeconds:0.0} s");
            Assert.True(probe.Succeeded, probe + "\n--- ffmpeg ---\n" + ffmpegLog + "\n" + EndToEnd.Describe(edge, relay));
            Assert.Equal("h264", probe.Video?.CodecName);
            Assert.Equal(320, probe.Video!.Width);
            Assert.True(probe.Video.FramesDecoded >= 50, probe.ToString());
            Assert.Equal("aac", probe.Audio?.CodecName);
            Assert.True(probe.Audio!.FramesDecoded > 0, probe.ToString());
            Assert.Empty(probe.DecoderErrors);

            // The LAN server is not anonymous either.
            var anonymous = await Ffprobe.ProbeAsync(new Uri($"rtsp://127.0.0.1:{lan}/lobby"), new ProbeOptions { Timeout = TimeSpan.FromSeconds(10) });
            Assert.False(anonymous.Succeeded, anonymous.ToString());
        }
        finally
        {
            if (ffmpeg is not null)
            {
                try { ffmpeg.Kill(); } catch (InvalidOperationException) { }
                await ffmpeg.WaitForExitAsync();
                ffmpeg.Dispose();
            }
            if (edge is not null) await edge.DisposeAsync();
            if (relay is not null) await relay.DisposeAsync();
            try { Directory.Delete(dir, recursive: true); }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
    }

    // One ANNOUNCE on its own connection (Basic: the relay of these tests takes it on plaintext).
    private static async Task<(int Status, string Reason)> AnnounceAsync(int port, string path, (string User, string Password)? credentials, string sdp)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", port);
        var stream = client.GetStream();
        var body = Encoding.UTF8.GetBytes(sdp);
        var auth = credentials is { } c ? $"Authorization: Basic {Convert.ToBase64String(Encoding.UTF8.GetBytes($"{c.User}:{c.Password}"))}\r\n" : "";
        var head = $"ANNOUNCE rtsp://127.0.0.1:{port}{path} RTSP/1.0\r\nCSeq: 1\r\n{auth}Content-Type: application/sdp\r\nContent-Length: {body.Length}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        await stream.WriteAsync(body);
        var response = new StringBuilder();
        var one = new byte[1];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (!response.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one, timeout.Token) == 0) throw new IOException("ANNOUNCE: connection closed");
            response.Append((char)one[0]);
        }
        var status = response.ToString().Split("\r\n")[0].Split(' ', 3);
        return (int.Parse(status[1], System.Globalization.CultureInfo.InvariantCulture), status.Length > 2 ? status[2] : "");
    }
}
