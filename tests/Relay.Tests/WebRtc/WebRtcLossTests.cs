using System.Globalization;
using System.Net;
using OpenQA.Selenium;
using Pinhole.Relay.Configuration;
using Pinhole.Streaming;
using Pinhole.Relay.WebRtc;
using Pinhole.Testing;
using Pinhole.Testing.Media;
using Xunit.Abstractions;

namespace Pinhole.Relay.Tests.WebRtc;

/// <summary>
/// Issue 17, loss recovery, with headless Chromium playing an in-process relay over WebRTC through
/// <see cref="LossyUdpProxy"/> (a UDP hop on 127.0.0.3 that drops the relay's RTP; no root needed):
/// NACKed packets are sent again from the relay's buffer, and a PLI is answered from the GOP cache.
/// </summary>
public sealed class WebRtcLossTests(ITestOutputHelper output)
{
    private const string Device = "gw1";
    private const string Camera = "door";
    private const string User = "alice";
    private const string Password = "alice-secret";

    // [framesDecoded, packetsLost, nackCount, pliCount, packetsReceived] of the player's inbound video.
    private const string InboundVideo = """
        const done = arguments[arguments.length - 1];
        const pc = window.pinhole && window.pinhole.pc;
        if (!pc) { done(null); return; }
        pc.getStats().then((report) => {
          let r = null;
          report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') r = [s.framesDecoded || 0, s.packetsLost || 0, s.nackCount || 0, s.pliCount || 0, s.packetsReceived || 0]; });
          done(r);
        }, () => done(null));
        """;

    private sealed class Rig : IAsyncDisposable
    {
        public required string Dir { get; init; }
        public required RelayApp Relay { get; init; }
        public required LossyUdpProxy Proxy { get; init; }
        public required CancellationTokenSource Feeding { get; init; }
        public required Task Feed { get; init; }
        public required Chromium Browser { get; init; }

        public WebRtcPeer Peer => Relay.Services.GetRequiredService<WebRtcServer>().Peers.Single(p => p.State == WebRtcPeerState.Connected);

        public long[] Stats() =>
            Browser.Driver.ExecuteAsyncScript(InboundVideo) is IReadOnlyCollection<object> values
                ? values.Select(v => Convert.ToInt64(v, CultureInfo.InvariantCulture)).ToArray()
                : throw new InvalidOperationException("the page has no RTCPeerConnection stats; the player: " + Player());

        public string Player() => Browser.Execute<string>("return window.pinhole ? window.pinhole.transport + ' ' + window.pinhole.state + ' ' + window.pinhole.fallbackReason : 'no player';");

        public async ValueTask DisposeAsync()
        {
            Browser.Dispose();
            await Feeding.CancelAsync();
            try { await Feed; } catch (OperationCanceledException) { }
            Proxy.Dispose();
            await Relay.DisposeAsync();
            Feeding.Dispose();
            Directory.Delete(Dir, recursive: true);
        }
    }

    /// <summary>
    /// 4 s of x264 Constrained Baseline (640x360, 25 fps, GOP 1 s): Debian's Chromium offers H.264 in
    /// Constrained Baseline only, and the shared test clip is High profile.
    /// </summary>
    private static TestClip BaselineClip()
    {
        var file = Path.Combine(Path.GetTempPath(), $"pinhole-baseline-{Guid.NewGuid():N}.h264");
        try
        {
            var psi = new System.Diagnostics.ProcessStartInfo("ffmpeg") { RedirectStandardError = true };
            foreach (var a in $"-nostdin -v error -y -f lavfi -i testsrc=size=640x360:rate=25 -t 4 -c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline -g 25 -bf 0 -pix_fmt yuv420p -f h264 {file}".Split(' '))
                psi.ArgumentList.Add(a);
            using var ffmpeg = System.Diagnostics.Process.Start(psi)!;
            var err = ffmpeg.StandardError.ReadToEnd();
            ffmpeg.WaitForExit();
            if (ffmpeg.ExitCode != 0) throw new InvalidOperationException("ffmpeg: " + err);
            var (video, units) = TestClips.SplitH264(File.ReadAllBytes(file), 640, 360, fps: 25);
            return new TestClip([video], units, TimeSpan.FromSeconds(4));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task<Rig> StartAsync(LossMode initial)
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-webrtc-loss-").FullName;
        var proxyAddress = IPAddress.Parse("127.0.0.3");
        var relay = await RelayApp.StartAsync(new RelayConfig
        {
            Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = dir,
            Viewers = [new ViewerConfig { User = User, Password = Password }],
            // The answer's only candidate is the proxy's address, with the relay's port.
            WebRtc = new WebRtcConfig { Udp = "127.0.0.1:0", Tcp = false, PublicAddresses = [proxyAddress.ToString()] },
        });
        var proxy = new LossyUdpProxy(proxyAddress, relay.Services.GetRequiredService<WebRtcServer>().UdpEndPoint!) { Mode = initial };
        var feeding = new CancellationTokenSource();
        var stream = relay.Services.GetRequiredService<MediaStreamRegistry>().GetOrAdd(Device, Camera);
        var feed = TestClips.FeedLiveAsync(stream, BaselineClip(), feeding.Token);
        var browser = Chromium.Start();
        browser.Navigate(new Uri(relay.HttpUri, $"/play/{Device}/{Camera}"));
        browser.Driver.FindElement(By.Name("user")).SendKeys(User);
        browser.Driver.FindElement(By.Name("password")).SendKeys(Password);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        return new Rig { Dir = dir, Relay = relay, Proxy = proxy, Feeding = feeding, Feed = feed, Browser = browser };
    }

    [RequiresFact(Needs.Chromium | Needs.Ffmpeg)]
    public async Task Under_5_percent_loss_the_relay_resends_NACKed_packets_from_its_buffer_and_frames_keep_decoding()
    {
        await using var rig = await StartAsync(LossMode.None);
        await rig.Browser.WaitForAsync("window.pinhole && window.pinhole.transport === 'webrtc'", TimeSpan.FromSeconds(20));
        await Task.Delay(1000);

        rig.Proxy.Mode = LossMode.Random;
        var start = rig.Stats();
        var frames = new List<long> { start[0] };
        for (var i = 0; i < 10; i++)
        {
            await Task.Delay(1000);
            frames.Add(rig.Stats()[0]);
        }
        var end = rig.Stats();
        rig.Proxy.Mode = LossMode.None;
        var (dropped, forwarded, recovered, _) = rig.Proxy.Snapshot();
        var peer = rig.Peer;
        var decoded = end[0] - start[0];
        output.WriteLine($"10 s at 5% loss: proxy dropped {dropped} of {dropped + forwarded} RTP packets, {recovered} came again byte for byte; " +
            $"relay: {Interlocked.Read(ref peer.NacksReceived)} NACKed, {Interlocked.Read(ref peer.Retransmitted)} retransmitted; " +
            $"Chromium: nackCount +{end[2] - start[2]}, packetsLost {end[1]}, pliCount {end[3]}, decoded {decoded} frames ({string.Join(",", frames)})");

        Assert.True(dropped > 10, $"the proxy dropped only {dropped} packets");
        Assert.True(end[2] - start[2] > 0, "Chromium sent no NACK");
        Assert.True(Interlocked.Read(ref peer.Retransmitted) > 0, "the relay retransmitted nothing");
        // The resent packets are the very ones that were lost (same SRTP index, same bytes), and most losses are repaired.
        Assert.True(recovered > dropped / 2, $"only {recovered} of {dropped} dropped packets came again");
        Assert.True(decoded > 150, $"decoded {decoded} frames in 10 s at 5% loss: {string.Join(",", frames)}");
        Assert.All(frames.Zip(frames.Skip(1)), p => Assert.True(p.Second > p.First, $"frames stalled: {string.Join(",", frames)}"));
    }

    [RequiresFact(Needs.Chromium | Needs.Ffmpeg)]
    public async Task A_browser_that_missed_the_keyframe_sends_PLI_and_the_relay_answers_from_the_GOP_cache()
    {
        await using var rig = await StartAsync(LossMode.StartWithoutKeyframe);
        // The first picture the browser gets is a delta frame: it cannot decode until it has a keyframe.
        // 'webrtc' means a picture was shown over WebRTC; the player would go to MSE after 6 s without one.
        await rig.Browser.WaitForAsync("window.pinhole && (window.pinhole.transport === 'webrtc' || window.pinhole.transport === 'mse')", TimeSpan.FromSeconds(20));
        Assert.True(rig.Browser.Execute<string>("return window.pinhole.transport;") == "webrtc", "the player fell back: " + rig.Player());
        var deadline = DateTime.UtcNow.AddSeconds(10);
        long[] stats = rig.Stats();
        while (DateTime.UtcNow < deadline && (stats[0] < 25 || Interlocked.Read(ref rig.Peer.KeyframeRequests) == 0))
        {
            await Task.Delay(250);
            stats = rig.Stats();
        }
        var (dropped, forwarded, _, replayed) = rig.Proxy.Snapshot();
        var requests = Interlocked.Read(ref rig.Peer.KeyframeRequests);
        output.WriteLine($"proxy dropped the first {dropped} RTP packets (keyframe included), then forwarded {forwarded}; " +
            $"Chromium: pliCount {stats[3]}, decoded {stats[0]}; relay: {requests} keyframe requests; {replayed} cached pictures replayed one tick apart, the first in {rig.Proxy.FirstReplayedFramePackets} packets (median frame {rig.Proxy.MedianFramePackets()})");

        Assert.True(rig.Proxy.StartPassedAt > 0, "the proxy never let a small frame through");
        Assert.True(stats[3] > 0, "Chromium sent no PLI");
        Assert.True(requests > 0, "the relay saw no PLI");
        // The answer: the cached GOP again, squeezed right after the last timestamp sent.
        Assert.True(replayed > 0, "no picture was replayed from the GOP cache");
        // ...starting with the GOP's keyframe: several times the packets of a typical (delta) frame of the clip.
        var median = rig.Proxy.MedianFramePackets();
        Assert.True(rig.Proxy.FirstReplayedFramePackets > Math.Max(6, 2 * median),
            $"the first replayed picture took {rig.Proxy.FirstReplayedFramePackets} packets (median frame {median}): not a keyframe");
        Assert.True(stats[0] >= 25, $"decoded only {stats[0]} frames after the keyframe request");
    }
}
