using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Pinhole.Testing;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Benchmarks;

/// <summary>
/// The shipped video path for the video benchmarks: the published relay and edge (<c>out/relay</c>,
/// <c>out/edge</c>, from <c>./build.sh</c>) run as child processes with generated configs, so /proc
/// describes exactly what ships. Dispose stops both and deletes the configs.
/// </summary>
internal sealed partial class VideoPath : IAsyncDisposable
{
    public const string Device = "bench";
    public const string Camera = "cam";
    public const string User = "viewer";
    public const string Password = "bench-secret";
    private const string Token = "a-long-random-bench-token";
    public const string Admin = "admin";
    public const string AdminPassword = "bench-admin-secret";

    private readonly string _dir;

    private VideoPath(string dir, PeerProcess relay, PeerProcess edge, Uri relayRtsp, Uri edgeMetrics, Uri relayHttp)
    {
        _dir = dir;
        RelayHttpUrl = relayHttp;
        Relay = relay;
        Edge = edge;
        RelayRtspUrl = relayRtsp;
        EdgeMetricsUrl = edgeMetrics;
    }

    public PeerProcess Relay { get; }

    public PeerProcess Edge { get; }

    /// <summary>rtsp://USER:PASS@RELAY/DEVICE/CAMERA.</summary>
    public Uri RelayRtspUrl { get; }

    public Uri EdgeMetricsUrl { get; }

    /// <summary>http://RELAY:PORT/ (its web pages, /metrics, /uplink), straight to the relay.</summary>
    public Uri RelayHttpUrl { get; }

    /// <summary>pid of the edge's dotnet process (not a wrapper such as <c>ip netns exec</c>).</summary>
    public int EdgePid => ProcessStats.Find(Edge.Id, "dotnet", "pinhole-edge.dll");

    public int RelayPid => ProcessStats.Find(Relay.Id, "dotnet", "pinhole-relay.dll");

    /// <summary>
    /// Starts a relay listening on <paramref name="relayAddress"/> (root namespace) and an edge
    /// (in <paramref name="edgeNamespace"/> when given) pulling <paramref name="cameraUrl"/>, and
    /// waits until the edge sends frames. With <paramref name="uplinkVia"/>, the edge's relay URL is what it
    /// returns for the relay's HTTP port (e.g. a proxy started in front of it), else <c>ws://RELAY:PORT/uplink</c>.
    /// </summary>
    public static async Task<VideoPath> StartAsync(Uri cameraUrl, CancellationToken cancellationToken,
        string relayAddress = "127.0.0.1", string? edgeNamespace = null, string edgeWebAddress = "127.0.0.1",
        Func<int, Task<Uri>>? uplinkVia = null, string? edgeExposeJson = null)
    {
        var relayDll = Path.Combine(RepoPaths.Root, "out", "relay", "pinhole-relay.dll");
        var edgeDll = Path.Combine(RepoPaths.Root, "out", "edge", "pinhole-edge.dll");
        if (!File.Exists(relayDll) || !File.Exists(edgeDll))
            throw new InvalidOperationException($"{relayDll} or {edgeDll} is missing: run ./build.sh first (it publishes to out/)");

        var dir = Directory.CreateTempSubdirectory("pinhole-bench-video-").FullName;
        var (http, rtsp, web) = (FreePort.Get(), FreePort.Get(), FreePort.Get());
        await File.WriteAllTextAsync(Path.Combine(dir, "relay.json"), $$"""
            {
              "http": "http://{{relayAddress}}:{{http}}",
              "rtsp": "{{relayAddress}}:{{rtsp}}",
              "dataDir": "{{dir}}/relay-data",
              "metrics": { "public": true },
              "devices": [ { "id": "{{Device}}", "token": "{{Token}}" } ],
              "viewers": [ { "user": "{{User}}", "password": "{{Password}}" }, { "user": "{{Admin}}", "password": "{{AdminPassword}}", "role": "admin" } ]
            }
            """, cancellationToken);
        string EdgeConfig(Uri uplink) => $$"""
            {
              "deviceId": "{{Device}}",
              "token": "{{Token}}",
              "relays": [ "{{uplink}}" ],
              "cameras": [ { "name": "{{Camera}}", "source": "{{cameraUrl}}" } ],
              "web": { "listen": "http://{{edgeWebAddress}}:{{web}}", "password": "bench" },
              "dataDir": "{{dir}}/edge-data"{{(edgeExposeJson is null ? "" : ",\n  \"expose\": " + edgeExposeJson)}}
            }
            """;

        PeerProcess? relay = null;
        PeerProcess? edge = null;
        try
        {
            relay = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", relayDll, "--config", Path.Combine(dir, "relay.json"))
            {
                Name = "pinhole-relay",
                WorkingDirectory = dir,
                ReadyTcpPort = http,
                ReadyTcpHost = relayAddress,
            }, cancellationToken);
            var uplink = uplinkVia is null ? new Uri($"ws://{relayAddress}:{http}/uplink") : await uplinkVia(http);
            await File.WriteAllTextAsync(Path.Combine(dir, "edge.json"), EdgeConfig(uplink), cancellationToken);
            var metrics = new Uri($"http://{edgeWebAddress}:{web}/metrics");
            edge = await PeerProcess.StartAsync(new PeerStartInfo("dotnet", edgeDll, "--config", Path.Combine(dir, "edge.json"))
            {
                Name = "pinhole-edge",
                WorkingDirectory = dir,
                NetworkNamespace = edgeNamespace,
                ReadyCheck = async ct => await ReadMetricAsync(metrics, "pinhole_uplink_frames_sent_total", ct) > 0,
            }, cancellationToken);
            return new VideoPath(dir, relay, edge, new Uri($"rtsp://{User}:{Password}@{relayAddress}:{rtsp}/{Device}/{Camera}"), metrics,
                new Uri($"http://{relayAddress}:{http}/"));
        }
        catch
        {
            if (edge is not null) await edge.DisposeAsync();
            if (relay is not null) await relay.DisposeAsync();
            Directory.Delete(dir, recursive: true);
            throw;
        }
    }

    /// <summary>Sum of every series of <paramref name="name"/> on a Prometheus text page; 0 when absent or unreachable.</summary>
    public static async Task<double> ReadMetricAsync(Uri url, string name, CancellationToken cancellationToken)
    {
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(3) };
            var text = await http.GetStringAsync(url, cancellationToken);
            return SumMetric(text, name);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
    }

    public static double SumMetric(string text, string name)
    {
        double sum = 0;
        foreach (Match m in MetricLine().Matches(text))
            if (m.Groups[1].Value == name) sum += double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        return sum;
    }

    [GeneratedRegex(@"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)\s*$", RegexOptions.Multiline)]
    private static partial Regex MetricLine();

    public async ValueTask DisposeAsync()
    {
        await Edge.DisposeAsync();
        await Relay.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}

/// <summary>
/// An RTSP viewer (our own <see cref="RtspClient"/>) that records, for each video access unit, when
/// it arrived and a fingerprint of its content. The relay rewrites RTP timestamps and may add or
/// strip parameter sets, but the tail of the slice data is the camera's own bytes: frames seen by two
/// viewers are matched on it.
/// </summary>
internal sealed class ArrivalRecorder : IMediaSink
{
    private readonly Lock _lock = new();
    private readonly List<Arrival> _arrivals = [];
    private int _videoTrack = -1;

    public readonly record struct Arrival(long Timestamp, ulong Fingerprint, long Pts, bool IsKeyframe, int Size);

    public IReadOnlyList<Arrival> Snapshot()
    {
        lock (_lock) return [.. _arrivals];
    }

    public void OnTracks(IReadOnlyList<TrackInfo> tracks)
    {
        for (var i = 0; i < tracks.Count; i++)
            if (tracks[i].Codec is MediaCodec.H264 or MediaCodec.H265) { _videoTrack = i; return; }
    }

    public void OnAccessUnit(in AccessUnit unit)
    {
        var now = Stopwatch.GetTimestamp();
        if (unit.Track != _videoTrack) return;
        var arrival = new Arrival(now, Fingerprint(unit.Data.Span), unit.Pts, unit.IsKeyframe, unit.Data.Length);
        lock (_lock) _arrivals.Add(arrival);
    }

    /// <summary>FNV-1a over the last 256 bytes (the end of the last slice).</summary>
    private static ulong Fingerprint(ReadOnlySpan<byte> data)
    {
        var tail = data[Math.Max(0, data.Length - 256)..];
        var hash = 14695981039346656037UL;
        foreach (var b in tail) hash = (hash ^ b) * 1099511628211UL;
        return hash;
    }

    /// <summary>Runs a viewer of <paramref name="url"/> until <paramref name="cancellationToken"/> fires.</summary>
    public static Task RunAsync(Uri url, ArrivalRecorder sink, CancellationToken cancellationToken) => Task.Run(async () =>
    {
        var client = new RtspClient(url, new RtspClientOptions { Transport = RtspLowerTransport.Tcp, MediaTimeout = TimeSpan.FromSeconds(30) });
        try { await client.RunAsync(sink, cancellationToken); }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested) { }
    }, CancellationToken.None);

    /// <summary>
    /// For each frame both viewers saw (matched on content, ambiguous fingerprints dropped) whose
    /// arrival at <paramref name="reference"/> is after <paramref name="from"/>: arrival at
    /// <paramref name="other"/> minus arrival at <paramref name="reference"/>, in milliseconds.
    /// </summary>
    public static List<double> Delays(IReadOnlyList<Arrival> reference, IReadOnlyList<Arrival> other, long from)
    {
        var at = new Dictionary<ulong, long>();
        var ambiguous = new HashSet<ulong>();
        foreach (var a in other)
            if (!at.TryAdd(a.Fingerprint, a.Timestamp)) ambiguous.Add(a.Fingerprint);
        var seen = new HashSet<ulong>();
        var delays = new List<double>();
        foreach (var r in reference)
        {
            if (!seen.Add(r.Fingerprint)) ambiguous.Add(r.Fingerprint);
        }
        foreach (var r in reference)
        {
            if (r.Timestamp < from || ambiguous.Contains(r.Fingerprint)) continue;
            if (at.TryGetValue(r.Fingerprint, out var t))
                delays.Add(Stopwatch.GetElapsedTime(r.Timestamp, t).TotalMilliseconds);
        }
        return delays;
    }
}

/// <summary>CPU and memory of a process from /proc.</summary>
internal static class ProcessStats
{
    /// <summary>CLK_TCK; 100 on every Linux this runs on.</summary>
    private const double TicksPerSecond = 100;

    /// <summary>utime + stime of <paramref name="pid"/> in seconds.</summary>
    public static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        // Fields after the command name, which is in parentheses and may contain spaces.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    }

    /// <summary>VmHWM (peak RSS) of <paramref name="pid"/> in MB.</summary>
    public static double PeakRssMb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        return 0;
    }

    /// <summary>
    /// <paramref name="pid"/> when it is <paramref name="comm"/> and its command line holds
    /// <paramref name="marker"/>, else the first descendant that is (peers may be wrapped in <c>setsid</c> or <c>ip netns exec</c>).
    /// </summary>
    public static int Find(int pid, string comm, string marker)
    {
        var queue = new Queue<int>([pid]);
        while (queue.Count > 0)
        {
            var p = queue.Dequeue();
            try
            {
                if (File.ReadAllText($"/proc/{p}/cmdline").Contains(marker, StringComparison.Ordinal)
                    && File.ReadAllText($"/proc/{p}/comm").Trim() == comm) return p;
                foreach (var task in Directory.GetDirectories($"/proc/{p}/task"))
                {
                    var children = Path.Combine(task, "children");
                    if (!File.Exists(children)) continue;
                    foreach (var c in File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                        queue.Enqueue(int.Parse(c, CultureInfo.InvariantCulture));
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return pid;
    }
}

internal static class Stats
{
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (values.Count == 0) return double.NaN;
        var sorted = values.Order().ToList();
        return sorted[(int)Math.Min(sorted.Count - 1, Math.Round(p * (sorted.Count - 1)))];
    }

    /// <summary>Seconds from an environment variable (to shorten runs), else <paramref name="fallback"/>.</summary>
    public static TimeSpan Duration(string variable, TimeSpan fallback) =>
        double.TryParse(Environment.GetEnvironmentVariable(variable), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0
            ? TimeSpan.FromSeconds(s) : fallback;

    public const string Noise = "The machine has 2 cores shared with another engineer's test runs, so figures are noisy; run again before reading much into small differences.";
}
