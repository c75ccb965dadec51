using System.Diagnostics;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Benchmarks.Scale;

/// <summary>What to run: how many relays, devices and viewers, for how long.</summary>
internal sealed record LoadOptions
{
    /// <summary>1 (SQLite, viewers straight to it) or 2 (PostgreSQL, HAProxy in front).</summary>
    public int Relays { get; init; } = 1;

    public int Devices { get; init; } = 100;

    public int Viewers { get; init; } = 500;

    /// <summary>Length of each measured window (relays idle, devices only, devices and viewers).</summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Time to settle after devices connect and after viewers start, before measuring.</summary>
    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>The relay program (<c>pinhole-relay.dll</c>).</summary>
    public required string RelayDll { get; init; }

    /// <summary>Progress lines (null: quiet).</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>CPU (as a share of one core) and memory of one process over one window.</summary>
internal readonly record struct Usage(double CpuCores, double RssMb);

/// <summary>What one configuration measured.</summary>
internal sealed record LoadResult
{
    public required LoadOptions Options { get; init; }
    public required double ClipKbps { get; init; }
    public required int DevicesConnected { get; init; }
    public required int ViewersPlaying { get; init; }
    public required int ViewersRedirected { get; init; }
    public required int ViewersWithFrames { get; init; }
    public required IReadOnlyList<string> Failures { get; init; }
    public required long FramesExpected { get; init; }
    public required long FramesDelivered { get; init; }
    public required long FramesSkippedAtDevices { get; init; }
    public required long PacerLateFrames { get; init; }
    public required List<double> DelaysMs { get; init; }
    /// <summary>Per relay: idle, devices only, devices and viewers.</summary>
    public required IReadOnlyList<(string Name, int Devices, int Viewers, Usage Idle, Usage DevicesOnly, Usage WithViewers)> Relays { get; init; }
    public Usage? Proxy { get; init; }
    public Usage? Postgres { get; init; }
    public required Usage LoadGenerator { get; init; }
    /// <summary>Whole machine busy share (0..1) while devices and viewers ran.</summary>
    public required double MachineBusy { get; init; }

    public double DeliveredShare => FramesExpected == 0 ? 0 : (double)FramesDelivered / FramesExpected;

    public double CpuPerDeviceCores => Relays.Sum(r => r.DevicesOnly.CpuCores - r.Idle.CpuCores) / Math.Max(1, Options.Devices);
    public double RssPerDeviceMb => Relays.Sum(r => r.DevicesOnly.RssMb - r.Idle.RssMb) / Math.Max(1, Options.Devices);
    public double CpuPerViewerCores => Relays.Sum(r => r.WithViewers.CpuCores - r.DevicesOnly.CpuCores) / Math.Max(1, Options.Viewers);
    public double RssPerViewerMb => Relays.Sum(r => r.WithViewers.RssMb - r.DevicesOnly.RssMb) / Math.Max(1, Options.Viewers);
}

/// <summary>
/// The load test of issue 19: start the relays, measure them idle, connect the simulated devices and
/// measure them streaming, start the viewers and measure again, with frames delivered and added delay
/// taken in that last window. Per-device and per-viewer costs are the differences between windows.
/// </summary>
internal static class LoadRun
{
    public static async Task<LoadResult> RunAsync(StampedClip clip, LoadOptions options, CancellationToken cancellationToken)
    {
        void Log(string line) => options.Log?.Invoke(line);
        var devices = Enumerable.Range(1, options.Devices).Select(i => new SimulatedDevice(i, clip)).ToList();
        await using var cluster = await RelayCluster.StartAsync(options.RelayDll, options.Relays, devices, cancellationToken);
        DevicePacer? pacer = null;
        var viewers = new List<LoadViewer>();
        var viewing = new List<Task>();
        using var stopViewers = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            Log($"{options.Relays} relay(s) up; measuring them idle for {options.Window.TotalSeconds:0} s");
            await Task.Delay(options.Warmup, cancellationToken);
            var idle = await MeasureAsync(cluster, options.Window, cancellationToken);

            // Devices connect a few at a time, as a fleet coming back after an outage would (each token is a PBKDF2 check).
            using (var gate = new SemaphoreSlim(8))
            {
                await Task.WhenAll(devices.Select(async d =>
                {
                    await gate.WaitAsync(cancellationToken);
                    try { await d.ConnectAsync(cluster.UplinkUrl, cancellationToken); }
                    finally { gate.Release(); }
                }));
            }
            pacer = new DevicePacer(devices);
            var owners = await OwnersAsync(cluster, devices, cancellationToken);
            Log($"{devices.Count} devices streaming ({string.Join(", ", cluster.Relays.Select(r => $"{r.Name}: {owners.Count(o => o.Value == r.Name)}"))}); measuring for {options.Window.TotalSeconds:0} s");
            await Task.Delay(options.Warmup, cancellationToken);
            var devicesOnly = await MeasureAsync(cluster, options.Window, cancellationToken);

            for (var v = 0; v < options.Viewers; v++)
            {
                var device = devices[v % devices.Count];
                var viewer = new LoadViewer(v, new Uri(cluster.RtspBase, $"{device.Id}/{SimulatedDevice.Camera}"), device.Index, RelayCluster.ViewerUser, RelayCluster.ViewerPassword);
                viewers.Add(viewer);
                viewing.Add(Task.Run(() => viewer.RunAsync(stopViewers.Token), CancellationToken.None));
                // A short ramp: 500 DESCRIBEs in the same millisecond measure the accept queue, not the relay.
                if (v % 20 == 19) await Task.Delay(50, cancellationToken);
            }
            var waiting = Stopwatch.StartNew();
            while (viewers.Any(v => !v.Playing && v.Failure is null) && waiting.Elapsed < TimeSpan.FromSeconds(60))
                await Task.Delay(200, cancellationToken);
            Log($"{viewers.Count(v => v.Playing)} of {viewers.Count} viewers playing after {waiting.Elapsed.TotalSeconds:0.0} s ({viewers.Count(v => v.Redirects > 0)} followed a 302); measuring for {options.Window.TotalSeconds:0} s");
            await Task.Delay(options.Warmup, cancellationToken);
            var from = Stopwatch.GetTimestamp();
            var machineBefore = ProcessTree.MachineJiffies();
            var withViewers = await MeasureAsync(cluster, options.Window, cancellationToken);
            var machineAfter = ProcessTree.MachineJiffies();
            var until = Stopwatch.GetTimestamp();
            // Frames sent up to a second before the end still count: give them that second to arrive.
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            var lastSent = until - Stopwatch.Frequency;

            long expected = 0, delivered = 0;
            var delays = new List<double>();
            // Over the viewers that play: one the relay refused is counted as refused (in Failures), not as lost frames.
            foreach (var viewer in viewers.Where(v => v.Playing))
            {
                var device = devices[viewer.Device - 1];
                var (first, last) = device.SentBetween(from, lastSent);
                if (first == 0) continue;
                expected += (long)(last - first + 1);
                var seen = new HashSet<ulong>();
                foreach (var a in viewer.Snapshot())
                {
                    if (a.Sequence < first || a.Sequence > last || !seen.Add(a.Sequence)) continue;
                    delivered++;
                    delays.Add(a.DelayMs);
                }
            }
            var failures = devices.Where(d => d.Failure is not null).Select(d => $"{d.Id}: {d.Failure}")
                .Concat(viewers.Where(v => v.Failure is not null).Select(v => $"viewer {v.Index} ({v.Url.AbsolutePath}): {v.Failure}"))
                .ToList();
            var perRelayViewers = cluster.Relays.Select(r => viewers.Count(v => v.Playing && v.PlayedFrom?.Port is { } p && (p == r.RtspPort || !cluster.Balanced))).ToList();
            if (cluster.Balanced)
            {
                // Viewers that landed on the owner through HAProxy played through HAProxy's port: count them for the owner.
                var proxied = viewers.Where(v => v.Playing && v.PlayedFrom?.Port == cluster.RtspBase.Port).ToList();
                for (var i = 0; i < cluster.Relays.Count; i++)
                    perRelayViewers[i] += proxied.Count(v => owners.TryGetValue(devices[v.Device - 1].Id, out var o) && o == cluster.Relays[i].Name);
            }
            return new LoadResult
            {
                Options = options,
                ClipKbps = clip.BitsPerSecond / 1000,
                DevicesConnected = devices.Count(d => d.Failure is null),
                ViewersPlaying = viewers.Count(v => v.Playing && v.Failure is null),
                ViewersRedirected = viewers.Count(v => v.Redirects > 0),
                ViewersWithFrames = viewers.Count(v => v.Snapshot().Count > 0),
                Failures = failures,
                FramesExpected = expected,
                FramesDelivered = delivered,
                FramesSkippedAtDevices = devices.Sum(d => d.FramesSkipped),
                PacerLateFrames = Interlocked.Read(ref pacer.LateFrames),
                DelaysMs = delays,
                Relays = [.. cluster.Relays.Select((r, i) => (r.Name, owners.Count(o => o.Value == r.Name), perRelayViewers[i], idle.Relays[i], devicesOnly.Relays[i], withViewers.Relays[i]))],
                Proxy = withViewers.Proxy,
                Postgres = withViewers.Postgres,
                LoadGenerator = withViewers.Self,
                MachineBusy = (double)(machineAfter.Busy - machineBefore.Busy) / Math.Max(1, machineAfter.Total - machineBefore.Total),
            };
        }
        finally
        {
            await stopViewers.CancelAsync();
            await Task.WhenAll(viewing);
            pacer?.Dispose();
            foreach (var d in devices) d.Dispose();
        }
    }

    private sealed record Window(IReadOnlyList<Usage> Relays, Usage? Proxy, Usage? Postgres, Usage Self);

    private static async Task<Window> MeasureAsync(RelayCluster cluster, TimeSpan length, CancellationToken cancellationToken)
    {
        var pids = cluster.Relays.Select(r => r.Pid).ToList();
        var before = pids.Select(ProcessTree.CpuSeconds).ToList();
        var proxyBefore = cluster.ProxyPid is { } pp ? ProcessTree.CpuSeconds(pp) : 0;
        var pgBefore = cluster.PostgresPid is { } pg ? ProcessTree.TreeCpuSeconds(pg) : 0;
        var selfBefore = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        var clock = Stopwatch.StartNew();
        await Task.Delay(length, cancellationToken);
        var seconds = clock.Elapsed.TotalSeconds;
        var relays = pids.Select((p, i) => new Usage((ProcessTree.CpuSeconds(p) - before[i]) / seconds, ProcessTree.RssMb(p))).ToList();
        Usage? proxy = cluster.ProxyPid is { } pp2 ? new Usage((ProcessTree.CpuSeconds(pp2) - proxyBefore) / seconds, ProcessTree.RssMb(pp2)) : null;
        Usage? postgres = cluster.PostgresPid is { } pg2 ? new Usage((ProcessTree.TreeCpuSeconds(pg2) - pgBefore) / seconds, ProcessTree.RssMb(pg2)) : null;
        using var self = Process.GetCurrentProcess();
        var usage = new Usage((self.TotalProcessorTime.TotalSeconds - selfBefore) / seconds, self.WorkingSet64 / 1048576.0);
        return new Window(relays, proxy, postgres, usage);
    }

    /// <summary>Which relay holds each device's uplink: the one whose RTSP port answers DESCRIBE without a redirect.</summary>
    private static async Task<Dictionary<string, string>> OwnersAsync(RelayCluster cluster, IReadOnlyList<SimulatedDevice> devices, CancellationToken cancellationToken)
    {
        var owners = new Dictionary<string, string>();
        if (cluster.Relays.Count == 1)
        {
            foreach (var d in devices) owners[d.Id] = cluster.Relays[0].Name;
            return owners;
        }
        // The relays' /metrics list the streams each one holds online.
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            owners.Clear();
            foreach (var r in cluster.Relays)
            {
                var text = await http.GetStringAsync(new Uri($"http://127.0.0.1:{r.HttpPort}/metrics"), cancellationToken);
                foreach (var line in text.Split('\n'))
                {
                    if (!line.StartsWith("pinhole_relay_stream_online{", StringComparison.Ordinal) || !line.EndsWith(" 1", StringComparison.Ordinal)) continue;
                    var device = devices.FirstOrDefault(d => line.Contains($"\"{d.Id}\"", StringComparison.Ordinal));
                    if (device is not null) owners[device.Id] = r.Name;
                }
            }
            if (owners.Count == devices.Count || deadline.Elapsed > TimeSpan.FromSeconds(30)) return owners;
            await Task.Delay(250, cancellationToken);
        }
    }
}
