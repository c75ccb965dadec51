using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// Live video beside a bulk tunnel transfer on a capped uplink (issue #15): the edge runs in a network
/// namespace behind a veth pair whose upstream side is capped with <c>tc tbf</c> at
/// <see cref="LinkKbps"/>; a 4000 kbit/s camera streams through edge and relay. Phases: video alone
/// (delay of a relay viewer against a direct viewer, frames matched by content), video while a bulk
/// transfer from an exposed TCP service comes out through the tunnel WebSocket endpoint (delay again,
/// tunnel MB/s, SHA-256 of what arrived), and the peer: a plain TCP copy of the same size from the
/// edge's namespace to the root namespace over the same capped link. Needs root.
/// </summary>
public sealed class TunnelBenchmark : IBenchmark
{
    // 20 Mbit/s: the camera's 4 Mbit/s uses a fifth of it, so video alone sees an idle link, and a
    // bulk transfer can take the other 16 Mbit/s and more: the link is saturated during the bulk
    // phase, which is where video could wait behind tunnel bytes in the edge's queue, in the socket
    // and in the bottleneck's queue.
    private const int LinkKbps = 20_000;
    private const int CameraKbps = 4000;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(5);

    /// <inheritdoc />
    public string Name => "tunnel";

    /// <inheritdoc />
    public string Description => "4 Mbit/s video beside a bulk tunnel transfer on a 20 Mbit/s capped uplink: video delay before/during, tunnel MB/s beside a direct TCP copy";

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        if (Requirements.SkipReason(Needs.Root | Needs.RtspCamera) is { } reason)
            throw new BenchmarkSkippedException($"{reason} (it creates a network namespace and a tc qdisc, which needs root)");
        var alone = Stats.Duration("PINHOLE_BENCH_TUNNEL_ALONE_SECONDS", TimeSpan.FromSeconds(20));
        var megabytes = int.TryParse(Environment.GetEnvironmentVariable("PINHOLE_BENCH_TUNNEL_MB"), CultureInfo.InvariantCulture, out var mb) && mb > 0 ? mb : 48;
        long total = megabytes * 1024L * 1024;
        var inv = CultureInfo.InvariantCulture;

        await using var link = await SlowLinkBenchmark.CappedLink.CreateAsync(LinkKbps, cancellationToken);
        var options = new RtspCameraOptions { Width = 1280, Height = 720, Fps = 30, BitrateKbps = CameraKbps, Gop = 30, Pattern = "snow", BindAddress = link.RootAddress };
        await using var camera = await RtspCamera.StartAsync(options, cancellationToken);
        // The exposed service: sends `total` deterministic bytes to whoever connects, then closes.
        using var source = new BulkSource(IPAddress.Parse(link.RootAddress), total);

        List<double> before, during;
        int directBefore, directDuring;
        Transfer tunnel;
        double dropped;
        await using (var path = await VideoPath.StartAsync(camera.Url, cancellationToken, relayAddress: link.RootAddress, edgeNamespace: link.Namespace,
            edgeWebAddress: link.InnerAddress, edgeExposeJson: $$"""[ { "name": "bulk", "target": "{{link.RootAddress}}:{{source.Port}}" } ]"""))
        {
            var direct = new ArrivalRecorder();
            var relayed = new ArrivalRecorder();
            using var viewing = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var viewers = new[] { ArrivalRecorder.RunAsync(path.RelayRtspUrl, relayed, viewing.Token), ArrivalRecorder.RunAsync(camera.Url, direct, viewing.Token) };
            await Task.Delay(Settle, cancellationToken);

            var a0 = Stopwatch.GetTimestamp();
            await Task.Delay(alone, cancellationToken);
            var a1 = Stopwatch.GetTimestamp();

            var dropped0 = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken);
            var cookie = await LoginAsync(path.RelayHttpUrl, cancellationToken);
            var b0 = Stopwatch.GetTimestamp();
            tunnel = await ReceiveThroughTunnelAsync(path.RelayHttpUrl, cookie, cancellationToken);
            var b1 = Stopwatch.GetTimestamp();
            dropped = await VideoPath.ReadMetricAsync(path.EdgeMetricsUrl, "pinhole_uplink_dropped_frames_total", cancellationToken) - dropped0;
            await Task.Delay(TimeSpan.FromSeconds(3), cancellationToken); // frames of the window still on their way
            await viewing.CancelAsync();
            await Task.WhenAll(viewers);

            var all = relayed.Snapshot();
            var reference = direct.Snapshot();
            var refBefore = reference.Where(a => a.Timestamp >= a0 && a.Timestamp <= a1).ToList();
            var refDuring = reference.Where(a => a.Timestamp >= b0 && a.Timestamp <= b1).ToList();
            before = ArrivalRecorder.Delays(refBefore, all, a0);
            during = ArrivalRecorder.Delays(refDuring, all, b0);
            (directBefore, directDuring) = (refBefore.Count, refDuring.Count);
            if (before.Count == 0 || during.Count == 0)
                throw new InvalidOperationException($"no frame matched before ({before.Count}) or during ({during.Count}) the transfer\n{path.Edge.Output}");
        }
        if (tunnel.Bytes != total || !tunnel.Hash.SequenceEqual(source.Hash))
            throw new InvalidOperationException($"the tunnel delivered {tunnel.Bytes} of {total} bytes, checksum {(tunnel.Hash.SequenceEqual(source.Hash) ? "equal" : "different")}");

        // Peer: a plain TCP copy of the same size from the edge's namespace over the same capped link.
        var copy = await DirectCopyAsync(link, total, cancellationToken);

        Console.WriteLine(string.Create(inv, $"  video alone: delay median {Stats.Percentile(before, 0.5):0} ms, p95 {Stats.Percentile(before, 0.95):0}, p99 {Stats.Percentile(before, 0.99):0}; {before.Count} of {directBefore} frames"));
        Console.WriteLine(string.Create(inv, $"  during bulk: delay median {Stats.Percentile(during, 0.5):0} ms, p95 {Stats.Percentile(during, 0.95):0}, p99 {Stats.Percentile(during, 0.99):0}, max {during.Max():0}; {during.Count} of {directDuring} frames; edge dropped {dropped:0}"));
        Console.WriteLine(string.Create(inv, $"  tunnel: {megabytes} MB in {tunnel.Seconds:0.0} s = {MBps(total, tunnel.Seconds):0.00} MB/s (SHA-256 equal); direct TCP copy: {copy:0.0} s = {MBps(total, copy):0.00} MB/s"));

        var md = new StringBuilder();
        md.Append("## tunnel — live video beside a bulk tunnel transfer\n\n");
        md.Append(inv, $"The edge runs in its own network namespace behind a veth pair whose upstream side is capped with `tc qdisc … tbf rate {LinkKbps}kbit burst {SlowLinkBenchmark.CappedLink.BurstBytes} latency {SlowLinkBenchmark.CappedLink.LatencyMs}ms`; ")
          .Append(inv, $"camera (GStreamer, H.264 {options.Width}x{options.Height} {options.Fps} fps, {CameraKbps} kbit/s, GOP {options.Gop}, pattern `snow`), the published relay and the viewers are in the root namespace. ")
          .Append(inv, $"{LinkKbps / 1000} Mbit/s because the video then uses a fifth of the link and a bulk transfer can take the rest and more: during the transfer the link is saturated, so any queue ahead of video shows up as delay. ")
          .Append("The exposed service (`expose: bulk`) sends deterministic bytes and closes; it listens on the root side of the veth, so its bytes reach the edge over the uncapped direction and only the uplink crosses the cap. ")
          .Append("An admin reads them through `ws://RELAY/devices/ID/tunnels/bulk` (SHA-256 compared). ")
          .Append("Delay: a relay viewer against a direct viewer, frames matched by content (as in the latency benchmark). ")
          .Append(inv, $"**Peer:** a plain TCP copy of the same {megabytes} MB from the edge's namespace to the root namespace over the same capped link (`bash` `/dev/tcp`, no video).\n\n");
        md.Append("| | video alone | video + bulk tunnel transfer |\n|---|---|---|\n");
        md.Append(inv, $"| relay viewer delay, median / p95 / p99 / max | {Stats.Percentile(before, 0.5):0} / {Stats.Percentile(before, 0.95):0} / {Stats.Percentile(before, 0.99):0} / {before.Max():0} ms | {Stats.Percentile(during, 0.5):0} / {Stats.Percentile(during, 0.95):0} / {Stats.Percentile(during, 0.99):0} / {during.Max():0} ms |\n");
        md.Append(inv, $"| frames through (of those the camera sent) | {before.Count} of {directBefore} ({alone.TotalSeconds:0} s) | {during.Count} of {directDuring} ({tunnel.Seconds:0} s); edge dropped {dropped:0} |\n\n");
        md.Append("| throughput on the capped link | MB/s |\n|---|---|\n");
        md.Append(inv, $"| tunnel (service → edge → uplink → relay → WebSocket), {megabytes} MB beside the video | {MBps(total, tunnel.Seconds):0.00} |\n");
        md.Append(inv, $"| peer: direct TCP copy, {megabytes} MB, no video | {MBps(total, copy):0.00} |\n");
        md.Append(inv, $"| the link's {LinkKbps / 1000} Mbit/s, less the video's {CameraKbps / 1000} | {(LinkKbps - CameraKbps) / 8.0 / 1000:0.00} |\n\n");
        md.Append("How video keeps priority: the edge sends tunnel data only when no frame waits in its send queue, in messages of about 12 ms of the link's rate (4–64 KiB), ")
          .Append("and only while the uplink's socket holds (in flight and unsent, from `TCP_INFO`) less than what the socket really delivered (acknowledged bytes per 50 ms, ")
          .Append("never more than the kernel's delivery-rate estimate) × (minimum RTT + 15 ms), at least 16 KiB; so a bulk stream cannot grow TCP's window ")
          .Append("into the bottleneck's queue ahead of the next frame. Earlier runs on this link: 42 / 104 / 163 ms during the transfer with the budget from the kernel's rate ")
          .Append("alone and 64 KiB messages; 87 / 431 / 695 / 743 ms before any socket budget (5 / 60 / 107 ms alone). ")
          .Append(Stats.Noise).Append('\n');
        return md.ToString();
    }

    private static double MBps(long bytes, double seconds) => bytes / 1e6 / seconds;

    private readonly record struct Transfer(long Bytes, byte[] Hash, double Seconds);

    private static async Task<string> LoginAsync(Uri relay, CancellationToken cancellationToken)
    {
        var cookies = new CookieContainer();
        using var http = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = cookies }) { BaseAddress = relay };
        using var login = await http.PostAsync(new Uri("/login", UriKind.Relative),
            new FormUrlEncodedContent([new("user", VideoPath.Admin), new("password", VideoPath.AdminPassword)]), cancellationToken);
        if (login.StatusCode != HttpStatusCode.Redirect) throw new InvalidOperationException($"admin login answered {(int)login.StatusCode}");
        return cookies.GetCookieHeader(relay);
    }

    private static async Task<Transfer> ReceiveThroughTunnelAsync(Uri relay, string cookie, CancellationToken cancellationToken)
    {
        using var ws = new ClientWebSocket();
        ws.Options.SetRequestHeader("Cookie", cookie);
        var clock = Stopwatch.StartNew();
        await ws.ConnectAsync(new Uri($"ws://{relay.Authority}/devices/{VideoPath.Device}/tunnels/bulk"), cancellationToken);
        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", cancellationToken); // nothing to send: half-close
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[256 * 1024];
        long received = 0;
        while (true)
        {
            var r = await ws.ReceiveAsync(buffer, cancellationToken);
            if (r.MessageType == WebSocketMessageType.Close) break;
            sha.AppendData(buffer, 0, r.Count);
            received += r.Count;
        }
        return new Transfer(received, sha.GetHashAndReset(), clock.Elapsed.TotalSeconds);
    }

    private static async Task<double> DirectCopyAsync(SlowLinkBenchmark.CappedLink link, long total, CancellationToken cancellationToken)
    {
        using var listener = new TcpListener(IPAddress.Parse(link.RootAddress), 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var clock = Stopwatch.StartNew();
        var sender = Command.RunCheckedAsync(Tools.Require("ip"),
            ["netns", "exec", link.Namespace, "bash", "-c", $"head -c {total} /dev/zero > /dev/tcp/{link.RootAddress}/{port}"], TimeSpan.FromMinutes(10), cancellationToken);
        using var client = await listener.AcceptTcpClientAsync(cancellationToken);
        var stream = client.GetStream();
        var buffer = new byte[256 * 1024];
        long received = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0) received += n;
        var seconds = clock.Elapsed.TotalSeconds;
        await sender;
        if (received != total) throw new InvalidOperationException($"the direct copy delivered {received} of {total} bytes");
        return seconds;
    }

    /// <summary>A TCP service that sends the same deterministic bytes to each connection, then closes.</summary>
    private sealed class BulkSource : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();
        private readonly byte[] _block = new byte[64 * 1024];
        private readonly long _total;

        public BulkSource(IPAddress address, long total)
        {
            _total = total;
            new Random(15).NextBytes(_block);
            // The block differs per position (its index written in), so a reordered or repeated block changes the hash.
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            for (long sent = 0, i = 0; sent < total; i++)
            {
                var n = (int)Math.Min(_block.Length, total - sent);
                Stamp(i);
                sha.AppendData(_block, 0, n);
                sent += n;
            }
            Hash = sha.GetHashAndReset();
            _listener = new TcpListener(address, 0);
            _listener.Start();
            Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
            _ = Task.Run(ServeAsync);
        }

        public int Port { get; }

        public byte[] Hash { get; }

        private void Stamp(long i) => BitConverter.TryWriteBytes(_block.AsSpan(0, 8), i);

        private async Task ServeAsync()
        {
            try
            {
                while (true)
                {
                    using var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    var stream = client.GetStream();
                    for (long sent = 0, i = 0; sent < _total; i++)
                    {
                        var n = (int)Math.Min(_block.Length, _total - sent);
                        Stamp(i);
                        await stream.WriteAsync(_block.AsMemory(0, n), _stop.Token);
                        sent += n;
                    }
                    client.Client.Shutdown(SocketShutdown.Send);
                }
            }
            catch (OperationCanceledException) { }
            catch (IOException) { }
            catch (SocketException) { }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            _stop.Dispose();
        }
    }
}
