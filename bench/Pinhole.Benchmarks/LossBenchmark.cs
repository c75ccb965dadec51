using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// A device uplink that loses packets at random: the edge runs in a network namespace that reaches the
/// root namespace (camera, relay, viewers) only through a router namespace, whose iptables drops 0 %,
/// 2 % and 5 % of the packets it forwards upstream (<c>-m statistic --mode random</c>; netem is not
/// available here). Packets are lost after they left the sender, as on a real link, so TCP recovers
/// them by retransmission. For each loss rate, over 30 s (<c>PINHOLE_BENCH_LOSS_SECONDS</c>): frames
/// delivered and their delay through the relay against a direct viewer, beside ffmpeg in the same
/// namespace doing the same pull and a TCP push over the same lossy path at the same time, its frames
/// matched by content in the MPEG-TS it sends. Needs root.
/// </summary>
public sealed class LossBenchmark : IBenchmark
{
    private const int CameraKbps = 2000;
    private static readonly double[] LossRates = [0, 0.02, 0.05];
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    public string Name => "loss";

    /// <inheritdoc />
    public string Description => "uplink losing 0/2/5 % of packets (iptables statistic): frames delivered and delay via the relay, beside ffmpeg pushing over TCP";

    private sealed record Row(double Loss, int Direct, List<double> Ours, List<double> Peer, double Dropped, string Retransmits);

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        if (Requirements.SkipReason(Needs.Root | Needs.RtspCamera | Needs.Ffmpeg) is { } reason)
            throw new BenchmarkSkippedException($"{reason} (it creates network namespaces and iptables rules, which needs root)");
        if (Tools.Find("iptables") is null) throw new BenchmarkSkippedException("iptables is not installed");
        var window = Stats.Duration("PINHOLE_BENCH_LOSS_SECONDS", TimeSpan.FromSeconds(30));
        var inv = CultureInfo.InvariantCulture;
        var started = DateTimeOffset.UtcNow;
        var load = File.ReadAllText("/proc/loadavg").Split(' ')[0];

        await using var link = await LossyLink.CreateAsync(cancellationToken);
        var options = new RtspCameraOptions { Width = 1280, Height = 720, Fps = 30, BitrateKbps = CameraKbps, Gop = 30, Pattern = "snow", BindAddress = link.RootAddress };
        await using var camera = await RtspCamera.StartAsync(options, cancellationToken);
        var rows = new List<Row>();
        await using (var path = await VideoPath.StartAsync(camera.Url, cancellationToken, relayAddress: link.RootAddress, edgeNamespace: link.Namespace, edgeWebAddress: link.InnerAddress))
        {
            foreach (var loss in LossRates)
            {
                await link.SetLossAsync(loss, cancellationToken);
                var direct = new ArrivalRecorder();
                var relayed = new ArrivalRecorder();
                using var viewing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var viewers = new[] { ArrivalRecorder.RunAsync(path.RelayRtspUrl, relayed, viewing.Token), ArrivalRecorder.RunAsync(camera.Url, direct, viewing.Token) };
                await using var sink = new TsArrivalSink(IPAddress.Parse(link.RootAddress), cancellationToken);
                await using var ffmpeg = await PeerProcess.StartAsync(new PeerStartInfo(Tools.Require("ffmpeg"),
                    "-hide_banner", "-nostats", "-loglevel", "warning", "-nostdin",
                    "-rtsp_transport", "tcp", "-i", camera.Url.ToString(),
                    "-c", "copy", "-flush_packets", "1", "-muxdelay", "0", "-f", "mpegts", $"tcp://{link.RootAddress}:{sink.Port}")
                {
                    Name = "ffmpeg",
                    NetworkNamespace = link.Namespace,
                }, cancellationToken);
                await Task.Delay(Settle, cancellationToken);
                var dropped0 = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken);
                var retransmits0 = await link.RetransmitsAsync(cancellationToken);
                var from = Stopwatch.GetTimestamp();
                await Task.Delay(window, cancellationToken);
                var until = Stopwatch.GetTimestamp();
                var dropped = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken) - dropped0;
                var retransmits = await link.RetransmitsAsync(cancellationToken) - retransmits0;
                // Frames of the window still on their way: both paths get the same grace.
                await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken);
                await ffmpeg.StopAsync();
                await viewing.CancelAsync();
                await Task.WhenAll(viewers);

                var reference = direct.Snapshot().Where(a => a.Timestamp >= from && a.Timestamp <= until).ToList();
                var ours = ArrivalRecorder.Delays(reference, relayed.Snapshot(), from);
                var peer = ArrivalRecorder.Delays(reference, sink.Snapshot(), from);
                if (reference.Count == 0) throw new InvalidOperationException("the direct viewer saw no frame");
                var row = new Row(loss, reference.Count, ours, peer, dropped, retransmits.ToString("0", inv));
                rows.Add(row);
                Console.WriteLine(string.Create(inv, $"  loss {loss * 100:0} %: pinhole {Describe(row.Ours, row.Direct)}; edge dropped {dropped:0} | ffmpeg {Describe(row.Peer, row.Direct)} | TCP retransmits in the namespace {retransmits:0}"));
                if (ours.Count == 0) Console.WriteLine(path.Edge.Output);
                if (peer.Count == 0) Console.WriteLine(ffmpeg.Output);
            }
        }

        var md = new StringBuilder();
        md.Append("## loss — an uplink that loses packets\n\n");
        md.Append(inv, $"Run {started:yyyy-MM-dd HH:mm} UTC, load average {load} at the start ({Environment.ProcessorCount} cores, shared). ")
          .Append("The edge runs in its own network namespace and reaches the root namespace (camera, published relay, viewers) through a router namespace; ")
          .Append("there `iptables -A FORWARD -i EDGE-SIDE -m statistic --mode random --probability P -j DROP` loses packets going up (the edge's data; acks coming down are not lost), after they left the sender, as on a real link (netem is not available). ")
          .Append(inv, $"Camera: GStreamer, H.264 {options.Width}x{options.Height} {options.Fps} fps, {CameraKbps} kbit/s, GOP {options.Gop}, pattern `snow`. ")
          .Append(inv, $"For each loss rate: {Settle.TotalSeconds:0} s of settling, then {window.TotalSeconds:0} s in which a relay viewer and a direct viewer run; frames are matched by content and the delay is arrival via relay minus arrival direct; a frame of the window that never reached the viewer (3 s grace) is not delivered. ")
          .Append("**Peer**, at the same time over the same path: ffmpeg in the edge's namespace, `ffmpeg -rtsp_transport tcp -i rtsp://CAMERA -c copy -flush_packets 1 -muxdelay 0 -f mpegts tcp://ROOT:PORT` (flushing every packet, so that its own muxer does not hold frames back), into a sink in the benchmark that reassembles the MPEG-TS video PES packets and matches them with the direct viewer's frames the same way (arrival of a frame's last byte).\n\n");
        md.Append("| packet loss | pinhole: frames delivered | pinhole: delay median / p95 / p99 / max | edge drops | ffmpeg → TCP: frames delivered | ffmpeg: delay median / p95 / p99 / max | TCP retransmits (both) |\n|---|---|---|---|---|---|---|\n");
        foreach (var r in rows)
            md.Append(inv, $"| {r.Loss * 100:0} % | {Delivered(r.Ours, r.Direct)} | {Percentiles(r.Ours)} | {r.Dropped:0} | {Delivered(r.Peer, r.Direct)} | {Percentiles(r.Peer)} | {r.Retransmits} |\n");
        md.Append("\nThe link itself is fast (a veth pair), so loss costs time, not throughput: a lost segment waits for a fast retransmit after three duplicate acks, or for the tail-loss probe or the 200 ms minimum retransmission timeout when it was the last of a burst, and everything behind it on the connection waits too (head-of-line blocking). ")
          .Append("Both sides pay that; the edge's GOP-aware queue only drops when a frame could not arrive within its target delay. ")
          .Append("ffmpeg's 0 % row is its own floor (its median sits about one frame interval, 33 ms, above ours even on a clean link), so compare each side's rise over its own 0 % row as well as the absolute figures. ")
          .Append(Stats.Noise).Append('\n');
        return md.ToString();
    }

    private static string Delivered(List<double> delays, int direct) =>
        string.Create(CultureInfo.InvariantCulture, $"{delays.Count} of {direct} ({100.0 * delays.Count / direct:0.0} %)");

    private static string Percentiles(List<double> d) => d.Count == 0 ? "—"
        : string.Create(CultureInfo.InvariantCulture, $"{Stats.Percentile(d, 0.5):0} / {Stats.Percentile(d, 0.95):0} / {Stats.Percentile(d, 0.99):0} / {d.Max():0} ms");

    private static string Describe(List<double> d, int direct) => $"{Delivered(d, direct)}, delay {Percentiles(d)}";

    /// <summary>
    /// Edge namespace → router namespace (loses packets going up) → root namespace. Dispose deletes both
    /// namespaces and the root side of the pair, which takes the route and the rules with them.
    /// </summary>
    private sealed class LossyLink : IAsyncDisposable
    {
        private readonly string _router;

        private LossyLink(int id)
        {
            Namespace = $"phl{id}";
            _router = $"phr{id}";
            RootAddress = $"10.214.{id % 250}.1";
            RouterAddress = $"10.214.{id % 250}.2";
            RouterInner = $"10.215.{id % 250}.1";
            InnerAddress = $"10.215.{id % 250}.2";
        }

        public string Namespace { get; }

        public string RootAddress { get; }

        private string RouterAddress { get; }

        private string RouterInner { get; }

        public string InnerAddress { get; }

        private string RootDevice => Namespace + "a";

        private string RouterUp => Namespace + "b";

        private string RouterDown => Namespace + "c";

        private string EdgeDevice => Namespace + "d";

        public static async Task<LossyLink> CreateAsync(CancellationToken cancellationToken)
        {
            var link = new LossyLink(Environment.ProcessId % 100_000);
            string ns = link.Namespace, router = link._router;
            try
            {
                await Run(cancellationToken, "ip", "netns", "add", ns);
                await Run(cancellationToken, "ip", "netns", "add", router);
                await Run(cancellationToken, "ip", "link", "add", link.RootDevice, "type", "veth", "peer", "name", link.RouterUp, "netns", router);
                await Run(cancellationToken, "ip", "addr", "add", link.RootAddress + "/24", "dev", link.RootDevice);
                await Run(cancellationToken, "ip", "link", "set", link.RootDevice, "up");
                await Run(cancellationToken, "ip", "-n", router, "link", "add", link.RouterDown, "type", "veth", "peer", "name", link.EdgeDevice, "netns", ns);
                await Run(cancellationToken, "ip", "-n", router, "addr", "add", link.RouterAddress + "/24", "dev", link.RouterUp);
                await Run(cancellationToken, "ip", "-n", router, "addr", "add", link.RouterInner + "/24", "dev", link.RouterDown);
                await Run(cancellationToken, "ip", "-n", router, "link", "set", link.RouterUp, "up");
                await Run(cancellationToken, "ip", "-n", router, "link", "set", link.RouterDown, "up");
                await Run(cancellationToken, "ip", "-n", router, "link", "set", "lo", "up");
                await Run(cancellationToken, "ip", "netns", "exec", router, "sysctl", "-qw", "net.ipv4.ip_forward=1");
                await Run(cancellationToken, "ip", "-n", ns, "addr", "add", link.InnerAddress + "/24", "dev", link.EdgeDevice);
                await Run(cancellationToken, "ip", "-n", ns, "link", "set", link.EdgeDevice, "up");
                await Run(cancellationToken, "ip", "-n", ns, "link", "set", "lo", "up");
                await Run(cancellationToken, "ip", "-n", ns, "route", "add", "default", "via", link.RouterInner);
                // The root namespace reaches the edge's subnet through the router; the route goes with RootDevice.
                await Run(cancellationToken, "ip", "route", "add", link.InnerAddress[..link.InnerAddress.LastIndexOf('.')] + ".0/24", "via", link.RouterAddress, "dev", link.RootDevice);
                return link;
            }
            catch
            {
                await link.DisposeAsync();
                throw;
            }
        }

        /// <summary>Replaces the router's rule: <paramref name="probability"/> of the packets going up are dropped.</summary>
        public async Task SetLossAsync(double probability, CancellationToken cancellationToken)
        {
            await Run(cancellationToken, "ip", "netns", "exec", _router, "iptables", "-F", "FORWARD");
            if (probability > 0)
                await Run(cancellationToken, "ip", "netns", "exec", _router, "iptables", "-A", "FORWARD", "-i", RouterDown, "-m", "statistic", "--mode", "random",
                    "--probability", probability.ToString("0.###", CultureInfo.InvariantCulture), "-j", "DROP");
        }

        /// <summary>TCP segments retransmitted in the edge's namespace so far (<c>/proc/net/snmp</c>, RetransSegs).</summary>
        public async Task<double> RetransmitsAsync(CancellationToken cancellationToken)
        {
            var result = await Command.RunCheckedAsync(Tools.Require("ip"), ["netns", "exec", Namespace, "cat", "/proc/net/snmp"], TimeSpan.FromSeconds(10), cancellationToken);
            var lines = result.StandardOutput.Split('\n').Where(l => l.StartsWith("Tcp:", StringComparison.Ordinal)).ToList();
            if (lines.Count < 2) return double.NaN;
            var names = lines[0].Split(' ');
            var values = lines[1].Split(' ');
            var i = Array.IndexOf(names, "RetransSegs");
            return i > 0 && i < values.Length ? double.Parse(values[i], CultureInfo.InvariantCulture) : double.NaN;
        }

        private static Task Run(CancellationToken cancellationToken, string program, params string[] arguments) =>
            Command.RunCheckedAsync(Tools.Require(program), arguments, TimeSpan.FromSeconds(10), cancellationToken);

        public async ValueTask DisposeAsync()
        {
            await Command.RunAsync(Tools.Require("ip"), ["link", "del", RootDevice], TimeSpan.FromSeconds(10));
            await Command.RunAsync(Tools.Require("ip"), ["netns", "del", Namespace], TimeSpan.FromSeconds(10));
            await Command.RunAsync(Tools.Require("ip"), ["netns", "del", _router], TimeSpan.FromSeconds(10));
        }
    }
}
