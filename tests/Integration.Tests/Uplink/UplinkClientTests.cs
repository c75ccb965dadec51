using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.DependencyInjection;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Uplink;
using System.Diagnostics.Metrics;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>The edge UplinkClient against a real relay endpoint on loopback, through bad networks.</summary>
public class UplinkClientTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    // Fast intervals so the tests take seconds, not minutes.
    private static UplinkClientOptions Options(params Uri[] relays) => new()
    {
        DeviceId = "gw1",
        Token = "secret-gw1",
        Relays = relays,
        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        DeadLinkTimeout = TimeSpan.FromSeconds(1),
        ConnectTimeout = TimeSpan.FromSeconds(3),
        BackoffInitial = TimeSpan.FromMilliseconds(100),
        BackoffMax = TimeSpan.FromMilliseconds(500),
        DropReportInterval = TimeSpan.FromMilliseconds(200),
    };

    private static void FastRelay(Pinhole.Relay.Uplink.UplinkEndpointOptions o)
    {
        o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
        o.DeadLinkTimeout = TimeSpan.FromSeconds(1);
    }

    [Fact]
    public async Task Delivers_tracks_and_frames_in_order_and_measures_rtt()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        await using var edge = new RunningClient(Options(relay.Uplink), output);
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        await using var recorder = new StreamRecorder(stream);
        var camera = new FakeCamera();

        await camera.RunAsync(edge.Client.GetSink("cam"), frames: 50, CancellationToken.None);

        await recorder.WaitForAsync(r => r.Frames.Count == 50, Wait, "50 frames at the relay");
        Assert.Equal(Enumerable.Range(0, 50), recorder.Frames.Select(f => f.Index));
        Assert.Equal(FakeCamera.Track, recorder.Events.First(e => e.Event.Kind == Pinhole.Streaming.MediaEventKind.Tracks).Event.Tracks![0]);
        await WaitUntilAsync(() => edge.Client.RoundTripTime is not null && edge.Client.BytesInFlight == 0, "an ack covering everything");
        output.WriteLine($"rtt {edge.Client.RoundTripTime!.Value.TotalMilliseconds:0.00} ms");
        Assert.InRange(edge.Client.RoundTripTime!.Value, TimeSpan.Zero, TimeSpan.FromSeconds(1));
        Assert.Equal(50, edge.Client.FramesSent);
        Assert.Equal(0, edge.Client.DroppedFrames("cam"));
        var metrics = edge.Metrics.Render();
        Assert.Contains("pinhole_uplink_frames_sent_total{} 50", metrics, StringComparison.Ordinal);
        Assert.Contains($"pinhole_uplink_connected{{relay=\"{relay.Uplink}\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains("connected to", edge.Context.LastStatus, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_stopping_device_says_goodbye_to_the_relay()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        var edge = new RunningClient(Options(relay.Uplink), output);
        await new FakeCamera().RunAsync(edge.Client.GetSink("cam"), frames: 5, CancellationToken.None);
        await WaitUntilAsync(() => relay.Streams.TryGet("gw1", "cam", out var s) && s.FramesIn == 5, "5 frames at the relay");

        await edge.DisposeAsync();

        // The relay hears why, instead of finding a lost connection. (Stopping cancels the sender too; the
        // goodbye once depended on which of the two the session noticed first.)
        await WaitUntilAsync(() => relay.Log.Lines.Any(l => l.Contains("ended: device said goodbye: shutdown", StringComparison.Ordinal)), "the relay logging the goodbye");
    }

    [Fact]
    public async Task First_relay_down_fails_over_to_the_second()
    {
        var dead = new Uri($"ws://127.0.0.1:{FreePort()}/uplink");
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        var clock = Stopwatch.StartNew();
        await using var edge = new RunningClient(Options(dead, relay.Uplink), output);

        await WaitUntilAsync(() => edge.Client.ConnectedRelay == relay.Uplink, "connected to the second relay");
        output.WriteLine($"failed over in {clock.ElapsedMilliseconds} ms");
        Assert.True(relay.Sessions.IsConnected("gw1"));
    }

    [Fact]
    public async Task Keeps_retrying_until_the_relay_comes_up()
    {
        var port = FreePort();
        var uri = new Uri($"ws://127.0.0.1:{port}/uplink");
        await using var edge = new RunningClient(Options(uri), output);
        await Task.Delay(1500); // several failed attempts: the "network not up yet" boot case
        Assert.Null(edge.Client.ConnectedRelay);
        Assert.Contains("retrying", edge.Context.AllStatuses, StringComparison.Ordinal);

        await using var relay = await TestRelay.StartAsync(output, FastRelay, port: port);
        var clock = Stopwatch.StartNew();
        await WaitUntilAsync(() => edge.Client.ConnectedRelay == uri, "connected once the relay is up");
        output.WriteLine($"connected {clock.ElapsedMilliseconds} ms after the relay came up");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), "backoff is capped at 500 ms here");
    }

    [Fact]
    public async Task Refusal_is_reported_in_the_status_and_retried()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        await using var edge = new RunningClient(Options(relay.Uplink) with { Token = "wrong" }, output);
        await WaitUntilAsync(() => edge.Context.AllStatuses.Contains("HTTP 401 unauthorized", StringComparison.Ordinal), "refusal in status");
        await WaitUntilAsync(() => relay.Metrics.Render().Contains("pinhole_uplink_rejects_total{reason=\"unauthorized\"} 2", StringComparison.Ordinal), "a retry");
        Assert.Null(edge.Client.ConnectedRelay);
    }

    [Fact]
    public async Task Slow_link_drops_whole_gops_and_keeps_the_delay_bounded()
    {
        // The device's heartbeats queue behind up to a window plus a keyframe of media (about 1 s at
        // 30 KB/s), so the relay's dead-link limit here is 3 s, not FastRelay's 1 s: this test is about
        // congestion, and a link declared dead loses the frames in flight, which are then neither
        // received nor counted as dropped.
        await using var relay = await TestRelay.StartAsync(output, o =>
        {
            o.HeartbeatInterval = TimeSpan.FromMilliseconds(200);
            o.DeadLinkTimeout = TimeSpan.FromSeconds(3);
        });
        // 30 KB/s link for an 84 KB/s stream (12 KB keyframe + 24 x 3 KB per second).
        await using var proxy = new TcpTestProxy(relay.Port, upstreamBytesPerSecond: 30_000);
        var options = Options(new Uri($"ws://127.0.0.1:{proxy.Port}/uplink")) with
        {
            QueueDuration = TimeSpan.FromSeconds(1),
            MaxUnackedAge = TimeSpan.FromMilliseconds(500),
            DeadLinkTimeout = TimeSpan.FromSeconds(5),
        };
        await using var edge = new RunningClient(options, output);
        await WaitUntilAsync(() => edge.Client.ConnectedRelay is not null, "connected");
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        await using var recorder = new StreamRecorder(stream);
        var camera = new FakeCamera(fps: 25, gop: 25, keyframeBytes: 12_000, frameBytes: 3_000);

        await camera.RunAsync(edge.Client.GetSink("cam"), frames: 250, CancellationToken.None); // 10 s
        // Whatever is still queued or in flight either arrives or ages out and is dropped.
        await WaitUntilAsync(() => recorder.Frames.Count + edge.Client.DroppedFrames("cam") == 250, "every frame accounted for");

        var frames = recorder.Frames;
        var delays = frames.Select(f => Stopwatch.GetElapsedTime(camera.Produced[f.Index], f.At)).ToList();
        var dropped = edge.Client.DroppedFrames("cam");
        output.WriteLine($"received {frames.Count} of 250, dropped {dropped}, delay max {delays.Max().TotalMilliseconds:0} ms, " +
                         $"median {delays.Order().ElementAt(delays.Count / 2).TotalMilliseconds:0} ms, rtt {edge.Client.RoundTripTime?.TotalMilliseconds:0} ms");
        output.WriteLine("received: " + string.Join(",", frames.Select(f => f.Index)));

        Assert.True(dropped > 50, $"only {dropped} frames dropped; a 30 KB/s link cannot carry 84 KB/s");
        Assert.True(frames.Count > 40, $"only {frames.Count} frames got through");
        Assert.Equal(250, frames.Count + dropped);
        // Never a broken GOP: a received frame is a keyframe or the frame right after the previous one received.
        Assert.True(frames[0].Key);
        for (var k = 1; k < frames.Count; k++)
            Assert.True(frames[k].Index % camera.Gop == 0 || frames[k].Index == frames[k - 1].Index + 1,
                $"frame {frames[k].Index} arrived after {frames[k - 1].Index}: GOP broken");
        // Bounded delay: queue 1 s + in flight 0.5 s + the proxy's own buffer; unbounded would reach ~6 s by the end.
        Assert.True(delays.Max() < TimeSpan.FromSeconds(3.5), $"delay grew to {delays.Max().TotalSeconds:0.0} s");
        // The relay hears about the drops.
        await WaitUntilAsync(() => RelayDrops(relay) == dropped, "drop report at the relay");
    }

    [Fact]
    public async Task Blackholed_link_is_detected_within_the_heartbeat_window_and_reconnects()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        await using var proxy = new TcpTestProxy(relay.Port);
        await using var edge = new RunningClient(Options(new Uri($"ws://127.0.0.1:{proxy.Port}/uplink")), output);
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        using var stop = new CancellationTokenSource();
        var camera = new FakeCamera();
        var feeding = camera.RunAsync(edge.Client.GetSink("cam"), frames: int.MaxValue, stop.Token);
        await WaitUntilAsync(() => stream.FramesIn > 10, "frames flowing");

        proxy.BlackholeExisting();
        var clock = Stopwatch.StartNew();
        await WaitUntilAsync(() => edge.Client.ConnectedRelay is null, "dead link detected by the device");
        var detected = clock.Elapsed;
        var before = stream.FramesIn;
        await WaitUntilAsync(() => edge.Client.ConnectedRelay is not null && stream.FramesIn > before + 10, "reconnected and flowing again");
        var recovered = clock.Elapsed;
        await stop.CancelAsync();
        await feeding.ContinueWith(_ => { }, TaskScheduler.Default);

        output.WriteLine($"dead link detected after {detected.TotalMilliseconds:0} ms, frames flowing again after {recovered.TotalMilliseconds:0} ms");
        // Within the 1 s window plus scheduling slack, and not long before it. The slack is generous on
        // purpose: with one of the 2 cores hogged, 1.67 s was seen (the housekeeping tick, the test's
        // polling and the relay all share this process's thread pool). Without the heartbeat check a
        // silent TCP link goes unnoticed for many minutes, so 3 s still proves the mechanism.
        Assert.True(detected < TimeSpan.FromSeconds(3), $"detection took {detected.TotalSeconds:0.00} s with a 1 s dead-link timeout");
        Assert.True(detected > TimeSpan.FromMilliseconds(500), "detected long before the timeout: something else closed the link");
        // At least one reconnect. Once in CI (loaded, relay and edge in this one process) the fresh
        // connection also fell silent right after its handshake and the client, correctly, dialled a
        // third time; that stall is not yet explained (see the issue note), so it is not asserted away.
        Assert.True(proxy.ConnectionCount >= 2, $"expected a reconnect, saw {proxy.ConnectionCount} connection(s)");
        Assert.Matches(@"pinhole_uplink_dead_links_total\{\} [1-9]", edge.Metrics.Render());
    }

    [Fact]
    public async Task Tls_with_a_pinned_private_ca_works_and_fails_without_the_pin()
    {
        var (ca, leaf) = MakeCertificates();
        var caFile = Path.Combine(Path.GetTempPath(), $"pinhole-test-ca-{Guid.NewGuid():N}.crt");
        await File.WriteAllTextAsync(caFile, ca.ExportCertificatePem());
        try
        {
            await using var relay = await TestRelay.StartAsync(output, FastRelay, certificate: leaf);
            var config = new EdgeConfig { DeviceId = "gw1", Token = "secret-gw1", Relays = [relay.Uplink.ToString()], TrustedCa = caFile };

            await using (var unpinned = new RunningClient(UplinkClientOptions.FromConfig(config) with { TrustedCa = null, BackoffInitial = TimeSpan.FromMilliseconds(100), BackoffMax = TimeSpan.FromMilliseconds(300) }, output))
            {
                await Task.Delay(1500);
                Assert.Null(unpinned.Client.ConnectedRelay);
                Assert.Equal(0, relay.Sessions.Count);
            }

            var pinnedOptions = UplinkClientOptions.FromConfig(config) with { HeartbeatInterval = TimeSpan.FromMilliseconds(200) };
            Assert.Single(pinnedOptions.TrustedCa!);
            await using var pinned = new RunningClient(pinnedOptions, output);
            var stream = relay.Streams.GetOrAdd("gw1", "cam");
            await using var recorder = new StreamRecorder(stream);
            await new FakeCamera().RunAsync(pinned.Client.GetSink("cam"), frames: 10, CancellationToken.None);
            await recorder.WaitForAsync(r => r.Frames.Count == 10, Wait, "10 frames over wss");
            Assert.Equal(relay.Uplink, pinned.Client.ConnectedRelay);
            Assert.Equal("wss", relay.Uplink.Scheme);
        }
        finally
        {
            File.Delete(caFile);
        }
    }

    [Fact]
    public async Task Goes_through_an_http_connect_proxy()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        await using var proxy = new ConnectProxy();
        await using var edge = new RunningClient(Options(relay.Uplink) with { Proxy = new Uri($"http://127.0.0.1:{proxy.Port}") }, output);
        await WaitUntilAsync(() => edge.Client.ConnectedRelay is not null, "connected through the proxy");
        Assert.Contains($"CONNECT 127.0.0.1:{relay.Port} HTTP/1.1", proxy.Requests);
    }

    [Fact]
    public async Task An_upgrade_that_a_middlebox_holds_falls_back_to_HTTP_within_the_upgrade_timeout()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        await using var proxy = new UpgradeHoldingProxy(relay.Port);
        // A connect timeout longer than the test's wait: without the upgrade timeout the first attempt alone would outlast it.
        var options = Options(new Uri($"ws://127.0.0.1:{proxy.Port}/uplink")) with
        {
            ConnectTimeout = TimeSpan.FromSeconds(30),
            UpgradeTimeout = TimeSpan.FromSeconds(2),
        };
        var clock = Stopwatch.StartNew();
        await using var edge = new RunningClient(options, output);
        await WaitUntilAsync(() => edge.Client.Transport == Pinhole.Transport.Uplink.UplinkTransport.Http, "the uplink over HTTP");
        var took = clock.Elapsed;
        output.WriteLine($"connected over HTTP {took.TotalSeconds:0.00} s after start; upgrades held {proxy.Held}, requests forwarded {proxy.Forwarded}");
        Assert.True(took >= TimeSpan.FromSeconds(1.9), $"fell back after {took.TotalSeconds:0.00} s, before the upgrade timeout");
        Assert.True(proxy.Held >= 1, "the proxy never saw an upgrade");
        Assert.True(proxy.Forwarded >= 2, "the GET and POST of the fallback did not go through the proxy");
        Assert.Contains("over http", edge.Context.LastStatus, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^pinhole_uplink_http_fallbacks_total(?:\{\})? [1-9]", edge.Metrics.Render());

        // The session works: frames reach the relay over the fallback.
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        await using var recorder = new StreamRecorder(stream);
        await new FakeCamera().RunAsync(edge.Client.GetSink("cam"), frames: 20, CancellationToken.None);
        await recorder.WaitForAsync(r => r.Frames.Count == 20, Wait, "20 frames at the relay over the HTTP fallback");
    }

    [Fact]
    public async Task With_websocket_only_a_held_upgrade_never_falls_back_to_HTTP()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        await using var proxy = new UpgradeHoldingProxy(relay.Port);
        var options = Options(new Uri($"ws://127.0.0.1:{proxy.Port}/uplink")) with
        {
            Transport = UplinkTransportChoice.WebSocket,
            ConnectTimeout = TimeSpan.FromSeconds(2),
            UpgradeTimeout = TimeSpan.FromMilliseconds(200),
        };
        await using var edge = new RunningClient(options, output);
        await WaitUntilAsync(() => proxy.Held >= 2, "a second attempt");
        Assert.Equal(0, proxy.Forwarded);
        Assert.Null(edge.Client.Transport);
        Assert.Matches(@"(?m)^pinhole_uplink_http_fallbacks_total(?:\{\})? 0$", edge.Metrics.Render());
    }

    [Fact]
    public async Task The_relay_app_serves_the_uplink_with_its_device_registry_and_metrics()
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-uplink-").FullName;
        try
        {
            var config = new Pinhole.Relay.Configuration.RelayConfig
            {
                Http = "http://127.0.0.1:0", Rtsp = "127.0.0.1:0", DataDir = dir,
                Devices = [new() { Id = "gw1", Token = "secret-gw1" }],
                Metrics = new() { Public = true },
            };
            await using var relay = await Pinhole.Relay.RelayApp.StartAsync(config);
            // Not a dead-link or congestion test, and it asserts that nothing is dropped: the 1 s limits
            // of the other tests would give up on a link that a loaded machine keeps busy for that
            // long with a 2 MB message, losing the frames queued meanwhile.
            await using var edge = new RunningClient(Options(relay.UplinkUri) with { HeartbeatInterval = TimeSpan.FromSeconds(1), DeadLinkTimeout = TimeSpan.FromSeconds(10), QueueDuration = TimeSpan.FromSeconds(10), MaxUnackedAge = TimeSpan.FromSeconds(5) }, output);
            await WaitUntilAsync(() => edge.Client.ConnectedRelay is not null, "connected");
            var streams = relay.Services.GetRequiredService<Pinhole.Streaming.MediaStreamRegistry>();
            // 2 MB keyframes: the uplink is not bound by Kestrel's 1 MB request body limit.
            await new FakeCamera(keyframeBytes: 2_000_000, gop: 10).RunAsync(edge.Client.GetSink("door"), frames: 25, CancellationToken.None);
            await WaitUntilAsync(() => streams.TryGet("gw1", "door", out var s) && s.FramesIn == 25, "25 frames in the relay app");

            using var http = new HttpClient { BaseAddress = relay.HttpUri };
            var metrics = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            Assert.Contains("pinhole_uplinks_connected{} 1", metrics, StringComparison.Ordinal);
            Assert.Equal(0, edge.Client.DroppedFrames("door"));
            Assert.Contains("pinhole_uplink_frames_total{device=\"gw1\"} 25", metrics, StringComparison.Ordinal);
            Assert.Contains("pinhole_relay_stream_online{camera=\"door\",device=\"gw1\"} 1", metrics, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task A_restarted_pipeline_with_new_settings_moves_to_the_new_relay_and_keeps_the_camera_sinks()
    {
        await using var first = await TestRelay.StartAsync(output, FastRelay);
        await using var second = await TestRelay.StartAsync(output, FastRelay);
        using var logging = TestLogging.For(output, "edge ");
        var client = new UplinkClient(Options(first.Uplink), new Meter("test-edge"), logging);
        var sink = client.GetSink("cam");
        using var stop = new CancellationTokenSource();
        var feeding = new FakeCamera().RunAsync(sink, frames: int.MaxValue, stop.Token);

        using var run1 = new CancellationTokenSource();
        var pipeline1 = client.CreatePipeline(Options(first.Uplink));
        var task1 = pipeline1.RunAsync(new RecordingContext(), run1.Token);
        await WaitUntilAsync(() => first.Streams.TryGet("gw1", "cam", out var s) && s.FramesIn > 5, "frames at the first relay");

        // The supervisor starts the new instance as it stops the old one: runs must not overlap.
        var pipeline2 = client.CreatePipeline(Options(second.Uplink));
        using var run2 = new CancellationTokenSource();
        var task2 = pipeline2.RunAsync(new RecordingContext(), run2.Token);
        await Task.Delay(300);
        Assert.Equal(0, second.Sessions.Count);
        await run1.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task1);

        await WaitUntilAsync(() => second.Streams.TryGet("gw1", "cam", out var s) && s.FramesIn > 5, "frames at the second relay");
        Assert.Equal("uplink", pipeline2.Name);
        Assert.Equal(second.Uplink, client.ConnectedRelay);
        await WaitUntilAsync(() => first.Sessions.Count == 0, "first relay sees the device leave");
        await run2.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => task2);
        await stop.CancelAsync();
        await feeding.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Fact]
    public async Task A_stopped_camera_goes_offline_at_the_relay_and_comes_back_with_new_tracks()
    {
        await using var relay = await TestRelay.StartAsync(output, FastRelay);
        await using var edge = new RunningClient(Options(relay.Uplink), output);
        var stream = relay.Streams.GetOrAdd("gw1", "cam");
        var sink = edge.Client.GetSink("cam");
        await new FakeCamera().RunAsync(sink, frames: 10, CancellationToken.None);
        await WaitUntilAsync(() => stream.FramesIn == 10 && stream.IsOnline, "10 frames, online");

        edge.Client.EndStream("cam");
        await WaitUntilAsync(() => !stream.IsOnline, "camera offline at the relay");
        Assert.True(relay.Sessions.IsConnected("gw1"), "the uplink itself stays up");

        await new FakeCamera().RunAsync(sink, frames: 5, CancellationToken.None);
        await WaitUntilAsync(() => stream.FramesIn == 15 && stream.IsOnline, "back online");
    }

    private static long RelayDrops(TestRelay relay)
    {
        var line = relay.Metrics.Render().Split('\n').FirstOrDefault(l => l.StartsWith("pinhole_uplink_device_drops_total{camera=\"cam\",device=\"gw1\"}", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static (X509Certificate2 Ca, X509Certificate2 Leaf) MakeCertificates()
    {
        var now = DateTimeOffset.UtcNow;
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Pinhole Test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(now.AddDays(-1), now.AddDays(1));

        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=127.0.0.1", leafKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, false));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, false));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var issued = request.Create(ca, now.AddHours(-1), now.AddDays(1), RandomNumberGenerator.GetBytes(16));
        using var withKey = issued.CopyWithPrivateKey(leafKey);
        var leaf = X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null);
        return (X509CertificateLoader.LoadCertificate(ca.RawData), leaf);
    }

    private static async Task WaitUntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > Wait) throw new TimeoutException($"{what} did not happen within {Wait.TotalSeconds} s");
            await Task.Delay(10);
        }
    }

    /// <summary>An UplinkClient running as its pipeline would, stopped and awaited on dispose.</summary>
    private sealed class RunningClient : IAsyncDisposable
    {
        private readonly CancellationTokenSource _cts = new();
        private readonly Task _run;
        private readonly Microsoft.Extensions.Logging.ILoggerFactory _logging;

        public RunningClient(UplinkClientOptions options, ITestOutputHelper output)
        {
            _logging = TestLogging.For(output, "edge ");
            Client = new UplinkClient(options, Metrics.Meter, _logging);
            _run = Client.RunAsync(Context, _cts.Token);
        }

        /// <summary>The client's instruments (its meter is its own, as the edge's is per host).</summary>
        public MeterProbe Metrics { get; } = new(new Meter("test-edge"));
        public UplinkClient Client { get; }
        public RecordingContext Context { get; } = new();

        public async ValueTask DisposeAsync()
        {
            await _cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => _run);
            _logging.Dispose();
            _cts.Dispose();
            Metrics.Dispose();
        }
    }

    private sealed class RecordingContext : IPipelineContext
    {
        private readonly List<string> _statuses = [];
        public string LastStatus { get { lock (_statuses) return _statuses.Count == 0 ? "" : _statuses[^1]; } }
        public string AllStatuses { get { lock (_statuses) return string.Join("\n", _statuses); } }
        public void Heartbeat() { }
        public void SetStatus(string status) { lock (_statuses) _statuses.Add(status); }
    }
}
