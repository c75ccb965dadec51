using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// A device uplink slower than its camera: the edge runs in a network namespace joined to the root
/// namespace by a veth pair whose upstream side is capped with <c>tc tbf</c> at half the stream's
/// bitrate; camera, relay and viewers sit in the root namespace. Over 60 s
/// (<c>PINHOLE_BENCH_SLOW_SECONDS</c>) we report the delay a relay viewer sees against a direct viewer
/// (frames matched by content, as in the latency benchmark), how many frames got through, and the
/// edge's drop counter. The peer is ffmpeg in the same namespace doing the same pull and a TCP push
/// (<c>-c copy -f mpegts tcp://</c>) over the same capped link, whose lag is wall-clock time minus
/// the stream time it has muxed. Needs root.
/// </summary>
public sealed partial class SlowLinkBenchmark : IBenchmark
{
    private const int CameraKbps = 2000;
    private const int LinkKbps = 1000;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    /// <summary>A frame counts as back to normal when its delay is under this (loopback: median under 1 ms, p99 about 10 ms).</summary>
    private const double RecoveredMs = 50;

    /// <inheritdoc />
    public string Name => "slow-link";

    /// <inheritdoc />
    public string Description => "uplink capped (tc tbf) at half the stream bitrate: relay-side delay stays bounded, frames through, edge drops; beside ffmpeg pushing over TCP";

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        if (Requirements.SkipReason(Needs.Root | Needs.RtspCamera | Needs.Ffmpeg) is { } reason)
            throw new BenchmarkSkippedException($"{reason} (it creates a network namespace and a tc qdisc, which needs root)");
        var window = Stats.Duration("PINHOLE_BENCH_SLOW_SECONDS", TimeSpan.FromSeconds(60));
        var inv = CultureInfo.InvariantCulture;

        await using var link = await CappedLink.CreateAsync(LinkKbps, cancellationToken);
        var options = new RtspCameraOptions { Width = 1280, Height = 720, Fps = 30, BitrateKbps = CameraKbps, Gop = 30, Pattern = "snow", BindAddress = link.RootAddress };
        await using var camera = await RtspCamera.StartAsync(options, cancellationToken);

        // Ours.
        List<double> delays;
        List<(double At, double Delay)> timeline;
        int directFrames, relayedFrames;
        double dropped, sent, bytes;
        var recoveryWindow = Stats.Duration("PINHOLE_BENCH_RECOVERY_SECONDS", TimeSpan.FromSeconds(20));
        Recovery recovery;
        await using (var path = await VideoPath.StartAsync(camera.Url, cancellationToken, relayAddress: link.RootAddress, edgeNamespace: link.Namespace, edgeWebAddress: link.InnerAddress))
        {
            var direct = new ArrivalRecorder();
            var relayed = new ArrivalRecorder();
            using var viewing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var viewers = new[] { ArrivalRecorder.RunAsync(path.RelayRtspUrl, relayed, viewing.Token), ArrivalRecorder.RunAsync(camera.Url, direct, viewing.Token) };
            await Task.Delay(Settle, cancellationToken);
            var dropped0 = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken);
            var sent0 = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_frames_sent_total", cancellationToken);
            var bytes0 = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_bytes_sent_total", cancellationToken);
            var from = Stopwatch.GetTimestamp();
            await Task.Delay(window, cancellationToken);
            var until = Stopwatch.GetTimestamp();
            dropped = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken) - dropped0;
            sent = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_frames_sent_total", cancellationToken) - sent0;
            bytes = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_bytes_sent_total", cancellationToken) - bytes0;
            // Frames of the window still on their way arrive within the bound we are measuring.
            await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken);

            // Recovery: the cap goes away; how long until the delay is back to the uncapped figure?
            var droppedBefore = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken);
            var rateBefore = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_link_rate_bytes_per_second", cancellationToken);
            await link.RemoveCapAsync(cancellationToken);
            var removedAt = Stopwatch.GetTimestamp();
            await Task.Delay(recoveryWindow, cancellationToken);
            var recoveredUntil = Stopwatch.GetTimestamp();
            var droppedAfter = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken) - droppedBefore;
            var rateAfter = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_link_rate_bytes_per_second", cancellationToken);
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            await viewing.CancelAsync();
            await Task.WhenAll(viewers);

            var reference = direct.Snapshot().Where(a => a.Timestamp >= from && a.Timestamp <= until).ToList();
            var all = relayed.Snapshot();
            delays = ArrivalRecorder.Delays(reference, all, from);
            directFrames = reference.Count;
            relayedFrames = delays.Count;
            timeline = Timeline(reference, all, from);
            var afterCap = direct.Snapshot().Where(a => a.Timestamp >= removedAt && a.Timestamp <= recoveredUntil).ToList();
            var afterTimeline = Timeline(afterCap, all, removedAt, missingAsInfinite: true);
            // Per half second after the removal: frames through of frames sent, and the worst delay.
            Console.WriteLine("  after removal, per 0.5 s: " + string.Join(" ", afterTimeline.Where(t => t.At < 12).GroupBy(t => (int)(t.At * 2)).Select(g =>
                string.Create(inv, $"{g.Count(t => !double.IsInfinity(t.Delay))}/{g.Count()}:{g.Where(t => !double.IsInfinity(t.Delay)).Select(t => t.Delay).DefaultIfEmpty(double.NaN).Max():0}ms"))));
            recovery = Recovery.From(afterTimeline, recoveryWindow, droppedAfter, rateBefore, rateAfter);
            if (relayedFrames == 0)
                throw new InvalidOperationException($"no frame got through the capped link ({directFrames} direct)\n{path.Edge.Output}");
        }
        var firstThird = timeline.Where(t => t.At < window.TotalSeconds / 3).Select(t => t.Delay).ToList();
        var lastThird = timeline.Where(t => t.At >= window.TotalSeconds * 2 / 3).Select(t => t.Delay).ToList();
        Console.WriteLine(string.Create(inv, $"  pinhole: delay median {Stats.Percentile(delays, 0.5):0} ms, p99 {Stats.Percentile(delays, 0.99):0}, max {delays.Max():0}; {relayedFrames} of {directFrames} frames through; edge dropped {dropped:0}; link use {Utilisation(bytes, window):0} %"));

        Console.WriteLine(string.Create(inv, $"  recovery: cap removed; every frame through at a median under {RecoveredMs:0} ms for good after {recovery.DescribeTime()}; last 5 s: median {recovery.SteadyMedian:0.0} ms, p99 {recovery.SteadyP99:0.0} ms, {recovery.SteadyFrames} of {recovery.SteadyDirect} frames; edge dropped {DroppedText(recovery)}; link rate {recovery.RateBefore / 1000:0} -> {recovery.RateAfter / 1000:0} kB/s"));

        // Peer (the cap back on for it).
        await link.AddCapAsync(cancellationToken);
        var peer = await RunFfmpegAsync(link, camera.Url, window, cancellationToken);
        Console.WriteLine(string.Create(inv, $"  ffmpeg: lag at end {peer.LagAtEnd:0.0} s (max {peer.LagMax:0.0} s); {peer.Frames:0} frames muxed of {directFrames}"));

        var md = new StringBuilder();
        md.Append("## slow-link — an uplink slower than the camera\n\n");
        md.Append(inv, $"The edge runs in its own network namespace, joined to the root namespace by a veth pair; its upstream side is capped with `tc qdisc … tbf rate {LinkKbps}kbit burst {CappedLink.BurstBytes} latency {CappedLink.LatencyMs}ms`. ")
          .Append(inv, $"Camera (GStreamer, H.264 {options.Width}x{options.Height} {options.Fps} fps, {CameraKbps} kbit/s, GOP {options.Gop}, pattern `snow` so that x264 really spends the bitrate), the published relay and the viewers are in the root namespace, so only the uplink crosses the cap. ")
          .Append(inv, $"**Ours:** a relay viewer and a direct viewer run for {window.TotalSeconds:0} s (after {Settle.TotalSeconds:0} s of settling); frames are matched by content and the delay is arrival via relay minus arrival direct. ")
          .Append("Drops are the edge's `pinhole_uplink_dropped_frames_total` (whole frames up to the next keyframe, counted on the edge's `/metrics`). ")
          .Append("**Peer:** ffmpeg in the same namespace doing the same pull and a TCP push, `ffmpeg -rtsp_transport tcp -i rtsp://… -c copy -f mpegts tcp://ROOT:PORT` into a sink that discards, for the same time; ")
          .Append("its lag is wall-clock time since it started muxing minus the stream time it has muxed (`out_time` of `-progress`) — a lower bound of its delay, since the socket buffers add more.\n\n");
        md.Append("| | pinhole (edge → relay → viewer) | peer: ffmpeg → TCP |\n|---|---|---|\n");
        md.Append(inv, $"| delay, median / p95 / p99 / max | {Stats.Percentile(delays, 0.5):0} / {Stats.Percentile(delays, 0.95):0} / {Stats.Percentile(delays, 0.99):0} / {delays.Max():0} ms | lag at end {peer.LagAtEnd * 1000:0} ms, max {peer.LagMax * 1000:0} ms |\n");
        md.Append(inv, $"| delay, median in the first / last third of the window | {Stats.Percentile(firstThird, 0.5):0} / {Stats.Percentile(lastThird, 0.5):0} ms | lag at 1/3: {peer.LagAtThird * 1000:0} ms, at end: {peer.LagAtEnd * 1000:0} ms |\n");
        md.Append(inv, $"| frames through of {directFrames} the camera sent in the window | {relayedFrames} ({100.0 * relayedFrames / directFrames:0} %) reached the relay viewer | {peer.Frames:0} muxed (all late) |\n");
        md.Append(inv, $"| edge counters in the window | {sent:0} frames sent, {dropped:0} dropped | no dropping: TCP back-pressure |\n");
        md.Append(inv, $"| media bytes sent, share of the link's {LinkKbps} kbit/s | {Utilisation(bytes, window):0} % | |\n");
        md.Append("\n**Recovery.** After the window (and 3 s for frames still on their way) the tbf qdisc is deleted and the viewers go on for ")
          .Append(inv, $"{recoveryWindow.TotalSeconds:0} s. Recovered means that from then on, in every half second, every frame the camera sent reaches the relay viewer and their median delay is under {RecoveredMs:0} ms (the loopback figure, section latency, is a median under 1 ms and a p99 of about 10 ms).\n\n");
        md.Append("| after the cap is removed | pinhole |\n|---|---|\n");
        md.Append(inv, $"| time until every frame gets through at a median under {RecoveredMs:0} ms, for good | {recovery.DescribeTime()} |\n");
        md.Append(inv, $"| delay in the last 5 s, median / p99 | {recovery.SteadyMedian:0.0} / {recovery.SteadyP99:0.0} ms |\n");
        md.Append(inv, $"| frames through in the last 5 s | {recovery.SteadyFrames} of {recovery.SteadyDirect} |\n");
        md.Append(inv, $"| edge drops after the cap went | {DroppedText(recovery)} |\n");
        md.Append(inv, $"| edge's link rate (`pinhole_uplink_link_rate_bytes_per_second`) at removal → at the end | {recovery.RateBefore / 1000:0} → {recovery.RateAfter / 1000:0} kB/s |\n");
        md.Append("\nBounded means the relay-side delay does not grow over the window: compare the first and last thirds. ")
          .Append(Stats.Noise).Append('\n');
        md.Append("\nHow the edge keeps it low (`UplinkClientOptions`): the kernel holds at most 50 ms of the link's measured rate unsent (`TCP_NOTSENT_LOWAT`), at most 1 s of it is unacknowledged, ")
          .Append("and a frame that would reach the relay after 1.1 s (`TargetDelay`: its age plus the bytes still ahead of it and its own at the link's rate) is dropped with the rest of its GOP. ")
          .Append("That holds for keyframes too, which makes it a decision per GOP: a GOP whose keyframe would arrive late is skipped whole, so the link carries on with the GOP it is in, whose frames cost no new keyframe. ")
          .Append("Here a keyframe is about a third of a GOP's bytes and a GOP needs about 2 s of the link, so the edge sends whole GOPs with one skipped between (at most half the frames) rather than the head of every GOP. ")
          .Append("The link's rate is bytes over time across the acks of the last 5 s in which the link was busy, so neither a fast link carrying a small stream nor one jittery ack interval misleads it; ")
          .Append("once the link has not been busy for 2 s and delivers faster than that estimate, the estimate is dropped (`LinkRateFilter`), so a link that got faster is not held to its old rate.\n");
        return md.ToString();
    }

    private static string DroppedText(Recovery r) => r.Dropped.ToString("0", CultureInfo.InvariantCulture);

    /// <summary>What happened after the cap went: when the delay settled under <see cref="RecoveredMs"/> and what it settled at.</summary>
    private sealed record Recovery(double? Seconds, double SteadyMedian, double SteadyP99, int SteadyFrames, int SteadyDirect, TimeSpan Window, double Dropped, double RateBefore, double RateAfter)
    {
        public static Recovery From(List<(double At, double Delay)> timeline, TimeSpan window, double dropped, double rateBefore, double rateAfter)
        {
            // In half-second buckets of the frames the camera sent: a bucket is normal when every frame
            // reached the relay viewer and their median delay is under the bound (a single frame late
            // from a scheduling hiccup on a loaded machine does not count, a dropped frame does).
            // Recovered: the start of the first bucket from which every later one is normal.
            var buckets = timeline.GroupBy(t => (int)(t.At * 2)).OrderBy(g => g.Key).ToList();
            double? seconds = null;
            for (var i = buckets.Count - 1; i >= 0; i--)
            {
                var b = buckets[i].Select(t => t.Delay).ToList();
                if (b.Any(double.IsInfinity) || Stats.Percentile(b, 0.5) >= RecoveredMs) break;
                seconds = buckets[i].Key / 2.0;
            }
            var steadyFrom = window.TotalSeconds - 5;
            var steadyAll = timeline.Where(t => t.At >= steadyFrom).ToList();
            var steady = steadyAll.Where(t => !double.IsInfinity(t.Delay)).Select(t => t.Delay).ToList();
            return new Recovery(seconds, steady.Count > 0 ? Stats.Percentile(steady, 0.5) : double.NaN, steady.Count > 0 ? Stats.Percentile(steady, 0.99) : double.NaN,
                steady.Count, steadyAll.Count, window, dropped, rateBefore, rateAfter);
        }

        public string DescribeTime() => Seconds is { } s
            ? s.ToString("0.0", CultureInfo.InvariantCulture) + " s"
            : $"not within {Window.TotalSeconds.ToString("0", CultureInfo.InvariantCulture)} s";
    }

    private static double Utilisation(double bytes, TimeSpan window) => 100 * bytes * 8 / (LinkKbps * 1000.0 * window.TotalSeconds);

    // missingAsInfinite: a frame the relay viewer never got is in the list with an infinite delay (for "every frame from then on").
    private static List<(double At, double Delay)> Timeline(IReadOnlyList<ArrivalRecorder.Arrival> reference, IReadOnlyList<ArrivalRecorder.Arrival> other, long from, bool missingAsInfinite = false)
    {
        var at = new Dictionary<ulong, long>();
        foreach (var a in other) at.TryAdd(a.Fingerprint, a.Timestamp);
        var result = new List<(double, double)>();
        foreach (var r in reference)
            if (at.TryGetValue(r.Fingerprint, out var t))
                result.Add((Stopwatch.GetElapsedTime(from, r.Timestamp).TotalSeconds, Stopwatch.GetElapsedTime(r.Timestamp, t).TotalMilliseconds));
            else if (missingAsInfinite)
                result.Add((Stopwatch.GetElapsedTime(from, r.Timestamp).TotalSeconds, double.PositiveInfinity));
        return result;
    }

    private sealed record PeerResult(double LagAtThird, double LagAtEnd, double LagMax, double Frames);

    private static async Task<PeerResult> RunFfmpegAsync(CappedLink link, Uri camera, TimeSpan window, CancellationToken cancellationToken)
    {
        await using var sink = TcpSink.Discarding(IPAddress.Parse(link.RootAddress), cancellationToken);
        var port = sink.Port;

        var samples = new List<(double Wall, double Stream, double Frames)>();
        var gate = new Lock();
        Stopwatch? clock = null;
        double frames = 0;
        await using var ffmpeg = await PeerProcess.StartAsync(new PeerStartInfo(Tools.Require("ffmpeg"),
            "-hide_banner", "-nostats", "-loglevel", "warning", "-nostdin",
            "-rtsp_transport", "tcp", "-i", camera.ToString(),
            "-c", "copy", "-f", "mpegts", "-progress", "pipe:1", $"tcp://{link.RootAddress}:{port}")
        {
            Name = "ffmpeg",
            NetworkNamespace = link.Namespace,
            OnOutputLine = raw =>
            {
                var line = raw[(raw.IndexOf("] ", StringComparison.Ordinal) + 2)..]; // "[name] line"
                lock (gate)
                {
                    if (FrameLine().Match(line) is { Success: true } f) frames = double.Parse(f.Groups[1].Value, CultureInfo.InvariantCulture);
                    else if (OutTimeLine().Match(line) is { Success: true } m && long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) is > 0 and var us)
                    {
                        clock ??= Stopwatch.StartNew();
                        samples.Add((clock.Elapsed.TotalSeconds, us / 1e6, frames));
                    }
                }
            },
        }, cancellationToken);
        try
        {
            await Task.Delay(window, cancellationToken);
        }
        finally
        {
            await ffmpeg.StopAsync();
        }
        lock (gate)
        {
            if (samples.Count == 0) throw new InvalidOperationException("ffmpeg muxed nothing over the capped link\n" + ffmpeg.Output);
            // out_time counts from the first muxed packet; the first sample marks that moment.
            var (wall0, stream0, _) = samples[0];
            double Lag((double Wall, double Stream, double Frames) s) => (s.Wall - wall0) - (s.Stream - stream0);
            var third = samples.FirstOrDefault(s => s.Wall - wall0 >= window.TotalSeconds / 3, samples[^1]);
            return new PeerResult(Lag(third), Lag(samples[^1]), samples.Max(Lag), samples[^1].Frames);
        }
    }

    [GeneratedRegex(@"^frame=(\d+)")]
    private static partial Regex FrameLine();

    [GeneratedRegex(@"^out_time_us=(-?\d+)")]
    private static partial Regex OutTimeLine();

    /// <summary>
    /// A namespace joined to the root namespace by a veth pair; the namespace's egress (upstream) is
    /// capped with tbf. Dispose deletes the namespace, which removes the pair and the qdisc.
    /// </summary>
    internal sealed class CappedLink : IAsyncDisposable
    {
        public const int BurstBytes = 16_000;
        public const int LatencyMs = 200;

        private CappedLink(string ns, string subnet)
        {
            Namespace = ns;
            RootAddress = subnet + ".1";
            InnerAddress = subnet + ".2";
        }

        public string Namespace { get; }

        public string RootAddress { get; }

        public string InnerAddress { get; }

        private string RootDevice => Namespace + "a";

        public static async Task<CappedLink> CreateAsync(int kbit, CancellationToken cancellationToken)
        {
            var id = Environment.ProcessId % 100_000;
            var link = new CappedLink($"phb{id}", $"10.213.{id % 250}");
            var inner = link.Namespace + "b";
            try
            {
                await Run(cancellationToken, "ip", "netns", "add", link.Namespace);
                await Run(cancellationToken, "ip", "link", "add", link.RootDevice, "type", "veth", "peer", "name", inner, "netns", link.Namespace);
                await Run(cancellationToken, "ip", "addr", "add", link.RootAddress + "/24", "dev", link.RootDevice);
                await Run(cancellationToken, "ip", "link", "set", link.RootDevice, "up");
                await Run(cancellationToken, "ip", "netns", "exec", link.Namespace, "ip", "addr", "add", link.InnerAddress + "/24", "dev", inner);
                await Run(cancellationToken, "ip", "netns", "exec", link.Namespace, "ip", "link", "set", inner, "up");
                await Run(cancellationToken, "ip", "netns", "exec", link.Namespace, "ip", "link", "set", "lo", "up");
                link._kbit = kbit;
                await link.AddCapAsync(cancellationToken);
                return link;
            }
            catch
            {
                await link.DisposeAsync();
                throw;
            }
        }

        private int _kbit;

        private string InnerDevice => Namespace + "b";

        /// <summary>Puts the tbf cap on the namespace's egress (again).</summary>
        public Task AddCapAsync(CancellationToken cancellationToken) =>
            Run(cancellationToken, "ip", "netns", "exec", Namespace, "tc", "qdisc", "replace", "dev", InnerDevice, "root", "tbf",
                "rate", $"{_kbit}kbit", "burst", BurstBytes.ToString(CultureInfo.InvariantCulture), "latency", $"{LatencyMs}ms");

        /// <summary>Deletes the cap: the link is as fast as the veth pair again.</summary>
        public Task RemoveCapAsync(CancellationToken cancellationToken) =>
            Run(cancellationToken, "ip", "netns", "exec", Namespace, "tc", "qdisc", "del", "dev", InnerDevice, "root");

        private static Task Run(CancellationToken cancellationToken, string program, params string[] arguments) =>
            Command.RunCheckedAsync(Tools.Require(program), arguments, TimeSpan.FromSeconds(10), cancellationToken);

        public async ValueTask DisposeAsync()
        {
            await Command.RunAsync(Tools.Require("ip"), ["link", "del", RootDevice], TimeSpan.FromSeconds(10));
            await Command.RunAsync(Tools.Require("ip"), ["netns", "del", Namespace], TimeSpan.FromSeconds(10));
        }
    }
}
