using System.Net.Http;
using System.Text.Json;
using System.Text.RegularExpressions;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.EndToEnd;

/// <summary>
/// The real product as child processes with real configs: <c>pinhole-relay.dll --config relay.json</c>
/// and <c>pinhole-edge.dll --config edge.json</c> (both land next to this assembly because the test
/// project references them). Processes can be killed and started again on the same ports, and
/// either can run inside a network namespace.
/// </summary>
internal static partial class EndToEnd
{
    /// <summary>The end-to-end tests run one at a time: each runs a camera, an edge, a relay and
    /// viewers, and their timing assertions (frame rate, latency) mean nothing on 2 cores shared
    /// with another whole stack.</summary>
    public const string Collection = "end-to-end";

    public const string Device = "gw1";
    public const string Token = "e2e-device-token-0123456789";
    public const string ViewerUser = "viewer";
    public const string ViewerPassword = "pass";
    public const string CameraName = "cam";

    public static string RelayDll => Path.Combine(AppContext.BaseDirectory, "pinhole-relay.dll");
    public static string EdgeDll => Path.Combine(AppContext.BaseDirectory, "pinhole-edge.dll");

    /// <summary>A fresh directory for one test's configs and data dirs.</summary>
    public static string NewWorkDir(string name)
    {
        var dir = Path.Combine(Path.GetTempPath(), "pinhole-e2e", $"{name}-{Environment.ProcessId}-{Guid.NewGuid():N}"[..(name.Length + 20)]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    [GeneratedRegex("^pinhole-relay: serving")]
    private static partial Regex RelayServing();

    public static Uri RtspUrl(string host, int rtspPort, string camera = CameraName) =>
        new($"rtsp://{ViewerUser}:{ViewerPassword}@{host}:{rtspPort}/{Device}/{camera}");

    private static Action<string>? Log(ITestOutputHelper? output, string prefix) => output is null ? null : line =>
    {
        try { output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} {prefix} {line}"); }
        catch (InvalidOperationException) { /* the test already finished */ }
    };

    /// <summary>Writes relay.json and returns its path.</summary>
    public static string WriteRelayConfig(string dir, string host, int httpPort, int rtspPort, IReadOnlyDictionary<string, object>? extra = null)
    {
        var path = Path.Combine(dir, $"relay-{httpPort}.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(new
        {
            http = $"http://{host}:{httpPort}",
            rtsp = $"{host}:{rtspPort}",
            dataDir = Path.Combine(dir, $"relay-data-{httpPort}"),
            devices = new[] { new { id = Device, token = Token } },
            viewers = new[] { new { user = ViewerUser, password = ViewerPassword } },
            // The tests read relay metrics without logging in, and StalledRtspViewer speaks Basic.
            metrics = new { @public = true },
            rtspBasicOverPlaintext = true,
        }))!.AsObject();
        // Keys a feature's tests add (for example "webrtc", "iceServers").
        foreach (var (key, value) in extra ?? new Dictionary<string, object>())
            json[key] = System.Text.Json.Nodes.JsonNode.Parse(JsonSerializer.Serialize(value));
        File.WriteAllText(path, json.ToJsonString());
        return path;
    }

    /// <summary>Writes edge.json and returns its path.</summary>
    public static string WriteEdgeConfig(string dir, IEnumerable<string> relays, string cameraSource, int webPort, string webHost = "127.0.0.1")
    {
        var path = Path.Combine(dir, "edge.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new
        {
            deviceId = Device,
            token = Token,
            relays = relays.ToArray(),
            cameras = new[] { new { name = CameraName, source = cameraSource } },
            web = new { listen = $"http://{webHost}:{webPort}", password = "edge-page-password" },
            dataDir = Path.Combine(dir, "edge-data"),
        }));
        return path;
    }

    public static PeerStartInfo RelayStartInfo(string config, ITestOutputHelper? output, string name = "relay") =>
        new("dotnet", RelayDll, "--config", config)
        {
            Name = name,
            WorkingDirectory = Path.GetDirectoryName(config),
            ReadyLine = RelayServing(),
            OnOutputLine = Log(output, name),
        };

    public static PeerStartInfo EdgeStartInfo(string config, int webPort, ITestOutputHelper? output, string webHost = "127.0.0.1") =>
        new("dotnet", EdgeDll, "--config", config)
        {
            Name = "edge",
            WorkingDirectory = Path.GetDirectoryName(config),
            ReadyTcpPort = webPort,
            ReadyTcpHost = webHost,
            OnOutputLine = Log(output, "edge"),
        };

    /// <summary>
    /// Probes until a probe succeeds with at least <paramref name="frames"/> decoded video frames, or
    /// the deadline passes; returns the last probe either way (its log explains a failure).
    /// </summary>
    public static async Task<ProbeResult> ProbeUntilPlayingAsync(Uri url, TimeSpan timeout, int frames = 25, string? networkNamespace = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            var probe = await Ffprobe.ProbeAsync(url, new ProbeOptions
            {
                VideoFrames = frames,
                Timeout = left < TimeSpan.FromSeconds(5) ? TimeSpan.FromSeconds(5) : (left > TimeSpan.FromSeconds(20) ? TimeSpan.FromSeconds(20) : left),
                NetworkNamespace = networkNamespace,
            });
            if (probe.Succeeded && probe.Video is { } v && v.FramesDecoded >= frames) return probe;
            if (DateTime.UtcNow >= deadline) return probe;
            await Task.Delay(500);
        }
    }

    public static string Describe(params PeerProcess?[] peers) =>
        string.Join("\n", peers.Where(p => p is not null).Select(p => p!.Describe(p.Name)));
}

/// <summary>camera → edge (child process) → relay (child process), all on 127.0.0.1.</summary>
internal sealed class EndToEndStack : IAsyncDisposable
{
    private readonly ITestOutputHelper? _output;

    private EndToEndStack(ITestOutputHelper? output, RtspCamera camera, string dir, int httpPort, int rtspPort, int webPort, string cameraSource)
    {
        _output = output;
        Camera = camera;
        Dir = dir;
        HttpPort = httpPort;
        RtspPort = rtspPort;
        WebPort = webPort;
        CameraSource = cameraSource;
    }

    public RtspCamera Camera { get; }
    public string Dir { get; }
    public int HttpPort { get; }
    public int RtspPort { get; }
    public int WebPort { get; }
    public string CameraSource { get; }
    public PeerProcess? Relay { get; private set; }
    public PeerProcess? Edge { get; private set; }
    public Uri RtspUrl => EndToEnd.RtspUrl("127.0.0.1", RtspPort);
    public Uri HttpUri => new($"http://127.0.0.1:{HttpPort}");
    public string UplinkUrl => $"ws://127.0.0.1:{HttpPort}/uplink";

    /// <summary>The network namespace the relay and edge run in (null: the test's own); set it in StartAsync's configure.</summary>
    public string? NetworkNamespace { get; set; }

    /// <summary>Keys added to relay.json (written when the relay starts).</summary>
    public Dictionary<string, object> RelayExtra { get; } = [];

    /// <summary>The edge's <c>relays</c> list (default: this stack's relay only).</summary>
    public IReadOnlyList<string> Relays { get; private set; } = [];

    /// <summary>Starts a camera with <paramref name="options"/>, a relay and an edge whose camera source is <paramref name="source"/> (default: the camera's URL, with credentials when it has them).</summary>
    public static async Task<EndToEndStack> StartAsync(ITestOutputHelper? output, RtspCameraOptions options, Func<RtspCamera, string>? source = null, Func<EndToEndStack, IEnumerable<string>>? relays = null,
        Action<EndToEndStack>? configure = null, Func<EndToEndStack, Task>? beforeEdge = null)
    {
        var camera = await RtspCamera.StartAsync(options);
        EndToEndStack? stack = null;
        try
        {
            stack = new EndToEndStack(output, camera, EndToEnd.NewWorkDir("stack"), FreePort.Get(), FreePort.Get(), FreePort.Get(),
                (source ?? (c => c.UrlWithCredentials.ToString()))(camera));
            stack.Relays = relays is null ? [stack.UplinkUrl] : [.. relays(stack)];
            configure?.Invoke(stack);
            await stack.StartRelayAsync();
            if (beforeEdge is not null) await beforeEdge(stack);
            await stack.StartEdgeAsync();
            return stack;
        }
        catch
        {
            if (stack is not null) await stack.DisposeAsync();
            else await camera.DisposeAsync();
            throw;
        }
    }

    public async Task StartRelayAsync()
    {
        var config = EndToEnd.WriteRelayConfig(Dir, "127.0.0.1", HttpPort, RtspPort, RelayExtra);
        Relay = await PeerProcess.StartAsync(EndToEnd.RelayStartInfo(config, _output) with { NetworkNamespace = NetworkNamespace });
    }

    public async Task StartEdgeAsync()
    {
        var config = EndToEnd.WriteEdgeConfig(Dir, Relays, CameraSource, WebPort);
        Edge = await PeerProcess.StartAsync(EndToEnd.EdgeStartInfo(config, WebPort, _output) with { NetworkNamespace = NetworkNamespace });
    }

    public async Task KillRelayAsync()
    {
        if (Relay is null) return;
        Relay.Kill();
        await Relay.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await Relay.DisposeAsync();
        Relay = null;
    }

    public async Task KillEdgeAsync()
    {
        if (Edge is null) return;
        Edge.Kill();
        await Edge.WaitForExitAsync(TimeSpan.FromSeconds(10));
        await Edge.DisposeAsync();
        Edge = null;
    }

    public string Logs => EndToEnd.Describe(Edge, Relay) + "\n--- camera ---\n" + Camera.Log;

    public async ValueTask DisposeAsync()
    {
        if (Edge is not null) await Edge.DisposeAsync();
        if (Relay is not null) await Relay.DisposeAsync();
        await Camera.DisposeAsync();
        try { Directory.Delete(Dir, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
