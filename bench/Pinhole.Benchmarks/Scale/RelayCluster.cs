using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pinhole.Testing;

namespace Pinhole.Benchmarks.Scale;

/// <summary>
/// The relays under load, as child processes on loopback: one relay with its embedded SQLite (the
/// default deployment), or two relays sharing one PostgreSQL behind HAProxy running docs/haproxy.cfg
/// (its addresses swapped for free loopback ports), as in docs/scale-out.md. Every relay knows every
/// simulated device and one viewer account; the limits that guard one relay against one client
/// address are raised, since the whole load comes from 127.0.0.1.
/// </summary>
internal sealed class RelayCluster : IAsyncDisposable
{
    public const string ViewerUser = "loadviewer";
    public const string ViewerPassword = "load-viewer-secret";

    private readonly string _dir;
    private readonly List<PeerProcess> _relays = [];
    private PostgresServer? _postgres;
    private HaProxy? _proxy;

    private RelayCluster(string dir) => _dir = dir;

    /// <summary>Each relay's name, pid (of its dotnet process) and ports.</summary>
    public List<(string Name, int Pid, int HttpPort, int RtspPort)> Relays { get; } = [];

    /// <summary>Where devices dial: the balancer with two relays, else the relay.</summary>
    public Uri UplinkUrl { get; private set; } = null!;

    /// <summary>Where viewers ask first: the balancer's RTSP port with two relays, else the relay's.</summary>
    public Uri RtspBase { get; private set; } = null!;

    public bool Balanced => _proxy is not null;

    /// <summary>Process id of HAProxy (null without one).</summary>
    public int? ProxyPid { get; private set; }

    /// <summary>PostgreSQL's postmaster (its backends are its children), or null.</summary>
    public int? PostgresPid { get; private set; }

    /// <summary>Starts one relay on SQLite, or two on a new PostgreSQL behind HAProxy.</summary>
    /// <param name="relayDll">The relay to run (<c>pinhole-relay.dll</c>).</param>
    public static async Task<RelayCluster> StartAsync(string relayDll, int relays, IReadOnlyList<SimulatedDevice> devices, CancellationToken cancellationToken)
    {
        if (relays is < 1 or > 2) throw new ArgumentOutOfRangeException(nameof(relays), "1 or 2 relays");
        if (!File.Exists(relayDll)) throw new InvalidOperationException($"{relayDll} is missing: run ./build.sh first (it publishes to out/)");
        var cluster = new RelayCluster(Directory.CreateTempSubdirectory("pinhole-scale-").FullName);
        try
        {
            string? database = null;
            if (relays == 2)
            {
                cluster._postgres = await PostgresServer.StartAsync(cancellationToken: cancellationToken);
                await cluster._postgres.CreateDatabaseAsync("fleet", cancellationToken);
                database = cluster._postgres.DatabaseUrl("fleet");
                // The postmaster runs as the postgres user, maybe under a wrapper; its command line names its directory.
                cluster.PostgresPid = ProcessTree.Find(Environment.ProcessId, "postgres", cluster._postgres.Directory);
            }
            var ports = Enumerable.Range(0, relays).Select(_ => (Http: FreePort.Get(), Rtsp: FreePort.Get())).ToList();
            // Two relays start at the same moment, as after a deploy: the schema migration is theirs to share.
            var started = await Task.WhenAll(ports.Select((p, i) =>
            {
                var config = cluster.WriteConfig(i + 1, p.Http, p.Rtsp, database, devices);
                return PeerProcess.StartAsync(new PeerStartInfo("dotnet", relayDll, "--config", config)
                {
                    Name = $"relay{i + 1}",
                    WorkingDirectory = cluster._dir,
                    ReadyTcpPort = p.Http,
                    ReadyTimeout = TimeSpan.FromSeconds(60),
                }, cancellationToken);
            }));
            for (var i = 0; i < relays; i++)
            {
                cluster._relays.Add(started[i]);
                cluster.Relays.Add(($"relay{i + 1}", ProcessTree.Find(started[i].Id, "dotnet", "pinhole-relay.dll"), ports[i].Http, ports[i].Rtsp));
            }
            if (relays == 2)
            {
                int web = FreePort.Get(), rtsp = FreePort.Get();
                cluster._proxy = await HaProxy.StartWithConfigAsync(HaProxyConfig(web, rtsp, ports[0], ports[1]), web);
                cluster.ProxyPid = ProcessTree.Find(Environment.ProcessId, "haproxy", "haproxy.cfg");
                cluster.UplinkUrl = new Uri($"ws://127.0.0.1:{web}/uplink");
                cluster.RtspBase = new Uri($"rtsp://127.0.0.1:{rtsp}/");
            }
            else
            {
                cluster.UplinkUrl = new Uri($"ws://127.0.0.1:{ports[0].Http}/uplink");
                cluster.RtspBase = new Uri($"rtsp://127.0.0.1:{ports[0].Rtsp}/");
            }
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private string WriteConfig(int n, int http, int rtsp, string? database, IReadOnlyList<SimulatedDevice> devices)
    {
        var json = new JsonObject
        {
            ["http"] = $"http://127.0.0.1:{http}",
            ["rtsp"] = $"127.0.0.1:{rtsp}",
            ["dataDir"] = Path.Combine(_dir, $"relay{n}-data"),
            ["metrics"] = new JsonObject { ["public"] = true },
            ["devices"] = new JsonArray([.. devices.Select(d => (JsonNode)new JsonObject { ["id"] = d.Id, ["token"] = d.Token })]),
            ["viewers"] = new JsonArray(new JsonObject { ["user"] = ViewerUser, ["password"] = ViewerPassword }),
            // All load comes from one address (as it would through a balancer) and one viewer account.
            ["limits"] = new JsonObject
            {
                ["rtspConnections"] = 10_000,
                ["rtspConnectionsPerAddress"] = 10_000,
                ["httpConnectionsPerAddress"] = 0,
                ["viewersPerUser"] = 10_000,
                ["viewers"] = 10_000,
            },
        };
        if (database is not null)
        {
            json["database"] = database;
            json["publicUrl"] = $"http://127.0.0.1:{http}";
            json["publicRtsp"] = $"127.0.0.1:{rtsp}";
        }
        var path = Path.Combine(_dir, $"relay{n}.json");
        File.WriteAllText(path, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    /// <summary>docs/haproxy.cfg with its listen and server addresses swapped for loopback ports.</summary>
    private static string HaProxyConfig(int web, int rtsp, (int Http, int Rtsp) a, (int Http, int Rtsp) b)
    {
        var text = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "haproxy.cfg"));
        string Swap(string text, string from, string to) => text.Contains(from, StringComparison.Ordinal)
            ? text.Replace(from, to, StringComparison.Ordinal)
            : throw new InvalidOperationException($"docs/haproxy.cfg no longer has \"{from}\"");
        text = Swap(text, "server relay1 10.0.0.11:8554 check port 8080", $"server relay1 127.0.0.1:{a.Rtsp} check port {a.Http}");
        text = Swap(text, "server relay2 10.0.0.12:8554 check port 8080", $"server relay2 127.0.0.1:{b.Rtsp} check port {b.Http}");
        text = Swap(text, "server relay1 10.0.0.11:8080 check", $"server relay1 127.0.0.1:{a.Http} check");
        text = Swap(text, "server relay2 10.0.0.12:8080 check", $"server relay2 127.0.0.1:{b.Http} check");
        text = Swap(text, "bind *:8554", $"bind 127.0.0.1:{rtsp}");
        text = Swap(text, "bind *:80\n", $"bind 127.0.0.1:{web}\n");
        // One log line per connection is noise at this scale.
        text = Swap(text, "    log stdout format raw local0 info\n", "");
        return text;
    }

    /// <summary>Relay output, for a failure message.</summary>
    public string Logs() => string.Join("\n", _relays.Select(r => r.Describe(r.Name)));

    public async ValueTask DisposeAsync()
    {
        if (_proxy is not null) await _proxy.DisposeAsync();
        foreach (var r in _relays) await r.DisposeAsync();
        if (_postgres is not null) await _postgres.DisposeAsync();
        try { Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>CPU time and memory of processes, from /proc (Linux).</summary>
internal static class ProcessTree
{
    /// <summary>USER_HZ; 100 on every Linux this runs on.</summary>
    private const double TicksPerSecond = 100;

    /// <summary>utime + stime of <paramref name="pid"/> in seconds; 0 when it is gone.</summary>
    public static double CpuSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // After the command name (in parentheses, may hold spaces): field 3 is state, 14 utime, 15 stime.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    /// <summary>CPU seconds of <paramref name="pid"/> and every descendant (PostgreSQL's backends).</summary>
    public static double TreeCpuSeconds(int pid) => Descendants(pid).Prepend(pid).Sum(CpuSeconds);

    /// <summary>Resident set size (VmRSS) of <paramref name="pid"/> in MB; 0 when it is gone.</summary>
    public static double RssMb(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
        }
        catch (IOException)
        {
        }
        return 0;
    }

    /// <summary>Busy and total jiffies of the whole machine (/proc/stat's cpu line).</summary>
    public static (long Busy, long Total) MachineJiffies()
    {
        var fields = File.ReadLines("/proc/stat").First().Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(f => long.Parse(f, CultureInfo.InvariantCulture)).ToArray();
        var total = fields.Take(8).Sum(); // user nice system idle iowait irq softirq steal
        var idle = fields[3] + fields[4];
        return (total - idle, total);
    }

    /// <summary>
    /// <paramref name="pid"/> when its command is <paramref name="comm"/> and its command line holds
    /// <paramref name="marker"/>, else the first such descendant (peers may be wrapped); <paramref name="pid"/> when none is.
    /// </summary>
    public static int Find(int pid, string comm, string marker)
    {
        foreach (var p in Descendants(pid).Prepend(pid))
        {
            try
            {
                if (File.ReadAllText($"/proc/{p}/comm").Trim() == comm && File.ReadAllText($"/proc/{p}/cmdline").Contains(marker, StringComparison.Ordinal)) return p;
            }
            catch (IOException) { }
        }
        return pid;
    }

    private static List<int> Descendants(int pid)
    {
        var result = new List<int>();
        var queue = new Queue<int>([pid]);
        while (queue.Count > 0)
        {
            var p = queue.Dequeue();
            try
            {
                foreach (var task in Directory.GetDirectories($"/proc/{p}/task"))
                {
                    var children = Path.Combine(task, "children");
                    if (!File.Exists(children)) continue;
                    foreach (var c in File.ReadAllText(children).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    {
                        var child = int.Parse(c, CultureInfo.InvariantCulture);
                        result.Add(child);
                        queue.Enqueue(child);
                    }
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return result;
    }
}
