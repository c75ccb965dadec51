using System.Diagnostics;
using System.Diagnostics.Metrics;
using Pinhole.EdgeHost.Inbound;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Uplink;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Inbound;
using Pinhole.Relay.Viewers;
using Pinhole.Streaming.Rtsp;
using Pinhole.Transport.Media;
using Pinhole.Transport.Uplink;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Uplink;

/// <summary>WAN to LAN media through a real uplink on loopback: the relay's hub sends a publication down
/// the session of a device that confirmed inbound media, and tells publishers when a device cannot take it.</summary>
public class InboundUplinkTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);

    private static readonly TrackInfo Video = new()
    {
        Codec = MediaCodec.H264, ClockRate = 90_000, Width = 320, Height = 240,
        ParameterSets = [new byte[] { 0x67, 0x42, 0xc0, 0x1e }, new byte[] { 0x68, 0xce, 0x3c, 0x80 }],
    };

    private static UplinkClientOptions Options(Uri relay) => new()
    {
        DeviceId = "gw1",
        Token = "secret-gw1",
        Relays = [relay],
        HeartbeatInterval = TimeSpan.FromMilliseconds(200),
        DeadLinkTimeout = TimeSpan.FromSeconds(2),
        BackoffInitial = TimeSpan.FromMilliseconds(100),
        BackoffMax = TimeSpan.FromMilliseconds(500),
    };

    private sealed class Recorder : IInboundMediaHandler
    {
        public List<UplinkMessage> Messages { get; } = [];
        public int Disconnects;
        public void OnMessage(UplinkMessage message) { lock (Messages) Messages.Add(message); }
        public void OnDisconnected() => Interlocked.Increment(ref Disconnects);
        public T[] Of<T>() { lock (Messages) return [.. Messages.OfType<T>()]; }
    }

    private sealed class Context : IPipelineContext
    {
        public void Heartbeat() { }
        public void SetStatus(string status) { }
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

    private static InboundMediaHub Hub(TestRelay relay) => new(
        new ViewerDirectory([new ViewerConfig { User = "pub", Password = "p", Publish = true }, new ViewerConfig { User = "watcher", Password = "w" }]),
        id => TestRelay.Devices.ContainsKey(id), relay.Sessions);

    [Fact]
    public async Task A_publication_goes_down_the_uplink_and_ends_with_it()
    {
        await using var relay = await TestRelay.StartAsync(output);
        var hub = Hub(relay);
        Assert.Equal(503, hub.Check("pub", "/gw1/in/lobby").Status); // not connected yet
        var recorder = new Recorder();
        using var logging = TestLogging.For(output, "edge ");
        using var meter = new Meter("test-inbound-edge");
        var client = new UplinkClient(Options(relay.Uplink), meter, logging) { InboundMedia = recorder };
        using var cts = new CancellationTokenSource();
        var run = client.RunAsync(new Context(), cts.Token);
        try
        {
            await WaitUntilAsync(() => hub.Check("pub", "/gw1/in/lobby").Status != 503, "the uplink");
            Assert.Equal(403, hub.Check("watcher", "/gw1/in/lobby").Status);
            Assert.Equal(403, hub.Check(null, "/gw1/in/lobby").Status);
            Assert.Equal(404, hub.Check("pub", "/nosuch/in/lobby").Status);
            Assert.Equal(404, hub.Check("pub", "/gw1/in/..").Status);
            Assert.True(hub.Check("pub", "/gw1/in/lobby").IsAccepted);

            var publication = hub.Start("pub", "/gw1/in/lobby", out var refusal);
            Assert.NotNull(publication);
            Assert.Null(hub.Start("pub", "/gw1/in/lobby", out var twice)); // one publisher per name
            Assert.Equal(503, twice.Status);
            publication!.OnTracks([Video]);
            for (var n = 0; n < 50; n++)
                publication.OnAccessUnit(new AccessUnit(0, n * 3600L, n * 3600L, n % 25 == 0,
                    n % 25 == 0 ? new byte[] { 0, 0, 0, 3, 0x65, 0x88, (byte)n } : new byte[] { 0, 0, 0, 3, 0x41, 0x9a, (byte)n }));
            await WaitUntilAsync(() => recorder.Of<InboundFrame>().Length == 50, "50 frames at the device");
            var announce = Assert.Single(recorder.Of<InboundAnnounce>());
            Assert.Equal("lobby", announce.Name);
            Assert.Equal(Video, announce.Tracks[0]);
            Assert.Equal(Enumerable.Range(0, 50).Select(n => (byte)n), recorder.Of<InboundFrame>().Select(f => f.Unit.Data.Span[^1]));
            Assert.All(recorder.Of<InboundFrame>(), f => Assert.Equal(announce.StreamId, f.StreamId));

            publication.Dispose();
            await WaitUntilAsync(() => recorder.Of<InboundEnd>().Length == 1, "InboundEnd at the device");
            Assert.Equal(0, hub.Count);

            // A second publication is cut when the device's uplink ends.
            var second = hub.Start("pub", "/gw1/in/lobby", out _)!;
            Assert.NotNull(second);
            await cts.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
            await WaitUntilAsync(() => second.Ended.IsCancellationRequested, "the publication to end with the uplink");
            Assert.True(recorder.Disconnects >= 1);
            second.Dispose();
        }
        finally
        {
            await cts.CancelAsync();
            try { await run; } catch (OperationCanceledException) { }
        }
    }

    [Fact]
    public async Task A_device_without_an_rtsp_server_is_reported_as_not_supporting_inbound_media()
    {
        await using var relay = await TestRelay.StartAsync(output);
        var hub = Hub(relay);
        using var logging = TestLogging.For(output, "edge ");
        using var meter = new Meter("test-inbound-edge-v1");
        var client = new UplinkClient(Options(relay.Uplink), meter, logging); // no InboundMedia: the bit is not offered
        using var cts = new CancellationTokenSource();
        var run = client.RunAsync(new Context(), cts.Token);
        try
        {
            await WaitUntilAsync(() => hub.Check("pub", "/gw1/in/lobby").Status != 503, "the uplink");
            var decision = hub.Check("pub", "/gw1/in/lobby");
            Assert.Equal(501, decision.Status);
            Assert.Contains("does not support inbound media", decision.Reason);
            Assert.Null(hub.Start("pub", "/gw1/in/lobby", out _));
        }
        finally
        {
            await cts.CancelAsync();
            try { await run; } catch (OperationCanceledException) { }
        }
    }
}
