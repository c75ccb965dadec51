using System.Globalization;
using System.Text;
using Pinhole.Benchmarks.Scale;
using Pinhole.Testing;

namespace Pinhole.Benchmarks;

/// <summary>
/// The load test of issue 19 (docs/scale-out.md): simulated devices (real uplink sessions, each
/// sending a recorded ~1 Mbit/s H.264 stream at its pace) and RTSP viewers spread over them, on one
/// relay (SQLite) and on two relays sharing PostgreSQL behind HAProxy. Frames delivered, added delay
/// (device send to viewer arrival), and relay CPU and memory per device and per viewer.
/// Options: <c>--devices N</c> (100), <c>--viewers N</c> (500), <c>--seconds S</c> (30, each window),
/// <c>--relays 1|2|both</c> (both). Several sizes in one run: <c>--devices 100,20 --viewers 500,100</c>.
/// </summary>
public sealed class ScaleBenchmark : IConfigurableBenchmark
{
    private int[] _devices = [100], _viewers = [500];
    private int _seconds = 30;
    private int[] _relays = [1, 2];

    /// <inheritdoc />
    public string Name => "scale";

    /// <inheritdoc />
    public string Description => "issue 19 load: N uplink devices (~1 Mbit/s each) and M RTSP viewers on 1 relay and on 2 relays behind HAProxy (--devices, --viewers, --seconds, --relays)";

    /// <inheritdoc />
    public IReadOnlyCollection<string> Options => ["devices", "viewers", "seconds", "relays"];

    /// <inheritdoc />
    public void Configure(string option, string value)
    {
        int Count(string text, int min, int max) => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max
            ? n : throw new ArgumentException($"--{option} {value}: expected whole numbers from {min} to {max}");
        switch (option)
        {
            case "devices": _devices = [.. value.Split(',').Select(v => Count(v, 1, 10_000))]; break;
            case "viewers": _viewers = [.. value.Split(',').Select(v => Count(v, 0, 100_000))]; break;
            case "seconds": _seconds = Count(value, 1, 3600); break;
            case "relays":
                _relays = value switch
                {
                    "1" => [1],
                    "2" => [2],
                    "both" => [1, 2],
                    _ => throw new ArgumentException($"--relays {value}: expected 1, 2 or both"),
                };
                break;
            default: throw new ArgumentException($"--{option}: not an option of {Name}");
        }
    }

    /// <inheritdoc />
    public async Task<string> RunAsync(CancellationToken cancellationToken)
    {
        if (Requirements.SkipReason(Needs.Ffmpeg) is { } noFfmpeg) throw new BenchmarkSkippedException(noFfmpeg);
        if (_relays.Contains(2) && Requirements.SkipReason(Needs.HaProxy | Needs.Postgres) is { } noPeers) throw new BenchmarkSkippedException(noPeers);
        if (_devices.Length != _viewers.Length)
            throw new ArgumentException($"--devices gives {_devices.Length} size(s) and --viewers {_viewers.Length}: give one viewer count per device count");
        var relayDll = Path.Combine(RepoPaths.Root, "out", "relay", "pinhole-relay.dll");
        var clip = StampedClip.Record();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  clip: {clip.Units.Count} frames, {clip.BitsPerSecond / 1000:0} kbit/s"));
        var results = new List<LoadResult>();
        foreach (var (devices, viewers) in _devices.Zip(_viewers))
        foreach (var relays in _relays)
        {
            Console.WriteLine($"  --- {devices} devices, {viewers} viewers, {relays} relay(s)");
            var result = await LoadRun.RunAsync(clip, new LoadOptions
            {
                Relays = relays,
                Devices = devices,
                Viewers = viewers,
                Window = TimeSpan.FromSeconds(_seconds),
                RelayDll = relayDll,
                Log = line => Console.WriteLine("  " + line),
            }, cancellationToken);
            foreach (var line in Summary(result)) Console.WriteLine("  " + line);
            foreach (var failure in result.Failures.Take(10)) Console.WriteLine("  failure: " + failure);
            results.Add(result);
        }
        return Markdown(results, clip);
    }

    private static string Setup(LoadResult r) => r.Options.Relays == 1
        ? "1 relay, SQLite; devices and viewers straight to it"
        : "2 relays, PostgreSQL, HAProxy (docs/haproxy.cfg) for uplinks and RTSP";

    private static string Size(LoadResult r) => string.Create(CultureInfo.InvariantCulture,
        $"{r.Options.Relays} relay{(r.Options.Relays == 1 ? "" : "s")}, {r.Options.Devices} devices, {r.Options.Viewers} viewers");

    internal static IEnumerable<string> Summary(LoadResult r)
    {
        var inv = CultureInfo.InvariantCulture;
        yield return string.Create(inv, $"{Setup(r)}: {r.DevicesConnected}/{r.Options.Devices} devices, {r.ViewersPlaying}/{r.Options.Viewers} viewers playing ({r.ViewersRedirected} redirected)");
        yield return string.Create(inv, $"frames delivered {r.FramesDelivered} of {r.FramesExpected} ({r.DeliveredShare:P2}); added delay p50 {Stats.Percentile(r.DelaysMs, 0.5):0.0} ms, p99 {Stats.Percentile(r.DelaysMs, 0.99):0.0} ms");
        foreach (var x in r.Relays)
            yield return string.Create(inv, $"{x.Name}: {x.Devices} devices, {x.Viewers} viewers; CPU idle {x.Idle.CpuCores:P0}, devices {x.DevicesOnly.CpuCores:P0}, +viewers {x.WithViewers.CpuCores:P0} of a core; RSS {x.Idle.RssMb:0} / {x.DevicesOnly.RssMb:0} / {x.WithViewers.RssMb:0} MB");
        yield return string.Create(inv, $"per device {r.CpuPerDeviceCores * 100:0.00}% of a core, {r.RssPerDeviceMb:0.00} MB; per viewer {r.CpuPerViewerCores * 100:0.00}% of a core, {r.RssPerViewerMb:0.00} MB; machine busy {r.MachineBusy:P0}");
    }

    private static string Markdown(List<LoadResult> results, StampedClip clip)
    {
        var inv = CultureInfo.InvariantCulture;
        var first = results[0].Options;
        var md = new StringBuilder();
        md.Append("## scale — devices and viewers on one relay and on two behind HAProxy (issue 19)\n\n");
        md.Append("All on loopback. Simulated devices, each a real uplink session made with the device's own connection code (`UplinkClientConnection`: WebSocket upgrade with its token, Hello/Welcome, StreamAnnounce, MediaFrames), ")
          .Append(inv, $"send a recorded H.264 clip (ffmpeg testsrc2, 640x360, 25 fps, GOP 1 s, {clip.BitsPerSecond / 1000:0} kbit/s) in a loop at its pace; each frame carries a stamp (an SEI NAL unit: device, sequence, send time). ")
          .Append("RTSP viewers (a lightweight RTSP/TCP interleaved client in the benchmark: DESCRIBE, following 302s, Digest, SETUP, PLAY; RTP packets are only looked at, not depacketized) spread evenly over the devices. ")
          .Append("With two relays, devices dial HAProxy's HTTP port and viewers its RTSP port; a viewer landing on the relay without the device follows the 302 to the owner's own RTSP port. ")
          .Append(inv, $"Three windows of {first.Window.TotalSeconds:0} s each: relays idle, devices streaming, devices and viewers; per-device cost = (devices − idle) / devices, per-viewer cost = (with viewers − devices) / viewers, summed over the relays. ")
          .Append("CPU is utime+stime from /proc/PID/stat over the window (1.00 = one core), memory is VmRSS at its end. ")
          .Append("Frames delivered: frames the devices sent in the last window (up to 1 s before its end) that reached each of their viewers; added delay: send time at the device to the arrival of the frame's last RTP packet at the viewer, same clock. ")
          .Append("Everything — relays, HAProxy, PostgreSQL and the load generator itself — shares the machine's cores.\n\n");
        md.Append("| setup | devices | viewers playing | frames delivered | added delay p50 | p99 | relay CPU (cores) | relay RSS | CPU per device | RSS per device | CPU per viewer | RSS per viewer | machine busy |\n");
        md.Append("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        foreach (var r in results)
        {
            md.Append(inv, $"| {Setup(r)} | {r.DevicesConnected} of {r.Options.Devices} | {r.ViewersPlaying} of {r.Options.Viewers} ({r.ViewersRedirected} via 302) | ")
              .Append(inv, $"{r.DeliveredShare:P2} ({r.FramesDelivered:N0} of {r.FramesExpected:N0}) | {Stats.Percentile(r.DelaysMs, 0.5):0.0} ms | {Stats.Percentile(r.DelaysMs, 0.99):0.0} ms | ")
              .Append(inv, $"{string.Join(" + ", r.Relays.Select(x => x.WithViewers.CpuCores.ToString("0.00", inv)))} | {string.Join(" + ", r.Relays.Select(x => x.WithViewers.RssMb.ToString("0", inv)))} MB | ")
              .Append(inv, $"{r.CpuPerDeviceCores * 1000:0.0} m | {r.RssPerDeviceMb:0.00} MB | {r.CpuPerViewerCores * 1000:0.0} m | {r.RssPerViewerMb:0.00} MB | {r.MachineBusy:P0} |\n");
        }
        md.Append("\n(m = thousandths of a core.) Per relay:\n\n");
        md.Append("| setup | relay | devices held | viewers served | CPU idle / devices / +viewers | RSS idle / devices / +viewers |\n|---|---|---|---|---|---|\n");
        foreach (var r in results)
            foreach (var x in r.Relays)
                md.Append(inv, $"| {Size(r)} | {x.Name} | {x.Devices} | {x.Viewers} | {x.Idle.CpuCores:0.00} / {x.DevicesOnly.CpuCores:0.00} / {x.WithViewers.CpuCores:0.00} | {x.Idle.RssMb:0} / {x.DevicesOnly.RssMb:0} / {x.WithViewers.RssMb:0} MB |\n");
        md.Append("\nBeside the relays, in the window with viewers:\n\n| setup | HAProxy CPU | PostgreSQL CPU | load generator CPU | frames skipped at the devices (socket backed up) | pacer frames > 40 ms late |\n|---|---|---|---|---|---|\n");
        foreach (var r in results)
            md.Append(inv, $"| {Size(r)} | {(r.Proxy is { } p ? p.CpuCores.ToString("0.00", inv) : "—")} | {(r.Postgres is { } g ? g.CpuCores.ToString("0.00", inv) : "—")} | {r.LoadGenerator.CpuCores:0.00} | {r.FramesSkippedAtDevices} | {r.PacerLateFrames} |\n");
        md.Append("\nWhen machine busy is near 100 %, every process gets a share of the cores rather than what it asks for: the CPU figures are then what the relays were given, ")
          .Append("the difference between two windows can come out at or below zero (more data per wake-up costs less per frame), and the added delay includes the load generator's own waiting ")
          .Append("(its viewers and its devices run in one process, beside the relays). A per-viewer figure is only meaningful from a run on an otherwise idle machine.\n");
        md.Append(inv, $"\n{Stats.Noise}\n");
        return md.ToString();
    }
}
