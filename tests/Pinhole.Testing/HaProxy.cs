using System.Globalization;

namespace Pinhole.Testing;

/// <summary>
/// Debian's HAProxy on loopback for one test, as an HTTP reverse proxy in front of one backend. With
/// <c>stripUpgrade</c> it deletes <c>Upgrade</c> and <c>Connection</c> from every request, as corporate
/// proxies and middleboxes do, so no WebSocket can open through it while plain HTTP (streaming bodies
/// included: <c>option http-buffer-request</c> stays off) still passes.
/// </summary>
public sealed class HaProxy : IAsyncDisposable
{
    /// <summary>The server binary.</summary>
    public const string Program = "haproxy";

    private readonly PeerProcess _process;
    private readonly string _dir;

    private HaProxy(PeerProcess process, string dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    /// <summary>Null when HAProxy is installed, otherwise the skip reason.</summary>
    public static string? SkipReason => Tools.SkipReason(Program);

    /// <summary>The port HAProxy listens on (127.0.0.1).</summary>
    public int Port { get; }

    /// <summary>The configuration it runs with.</summary>
    public string Config => File.ReadAllText(Path.Combine(_dir, "haproxy.cfg"));

    /// <summary>What it logged.</summary>
    public string Log => _process.Output;

    /// <summary>
    /// Starts HAProxy on loopback port <paramref name="port"/> (default: a free one), forwarding HTTP to
    /// 127.0.0.1:<paramref name="backendPort"/>.
    /// </summary>
    public static async Task<HaProxy> StartAsync(int backendPort, bool stripUpgrade, int? port = null, Action<string>? onOutputLine = null)
    {
        var listen = port ?? FreePort.Get();
        var dir = Directory.CreateTempSubdirectory("pinhole-haproxy-").FullName;
        var strip = stripUpgrade
            ? "    http-request del-header Upgrade\n    http-request del-header Connection\n"
            : "";
        // Long client/server timeouts: the uplink's streams live for the whole test (its heartbeats keep them busy anyway).
        var config = $"""
            global
                log stdout format raw local0 info
            defaults
                mode http
                log global
                option httplog
                option http-no-delay
                timeout connect 5s
                timeout client 10m
                timeout server 10m
                timeout http-request 10s
                timeout tunnel 10m
            frontend edge
                bind 127.0.0.1:{listen.ToString(CultureInfo.InvariantCulture)}
            {strip}    default_backend relay
            backend relay
                server relay 127.0.0.1:{backendPort.ToString(CultureInfo.InvariantCulture)}

            """;
        File.WriteAllText(Path.Combine(dir, "haproxy.cfg"), config);
        return await StartAsync(dir, listen, onOutputLine);
    }

    /// <summary>Starts HAProxy with a whole configuration of the test's own; ready once <paramref name="readyPort"/> (127.0.0.1) accepts.</summary>
    public static async Task<HaProxy> StartWithConfigAsync(string config, int readyPort, Action<string>? onOutputLine = null)
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-haproxy-").FullName;
        File.WriteAllText(Path.Combine(dir, "haproxy.cfg"), config);
        return await StartAsync(dir, readyPort, onOutputLine);
    }

    private static async Task<HaProxy> StartAsync(string dir, int listen, Action<string>? onOutputLine)
    {
        var info = new PeerStartInfo(Tools.Require(Program), "-db", "-f", Path.Combine(dir, "haproxy.cfg"))
        {
            Name = "haproxy",
            WorkingDirectory = dir,
            ReadyTcpPort = listen,
            OnOutputLine = onOutputLine,
        };
        try
        {
            return new HaProxy(await PeerProcess.StartAsync(info), dir, listen);
        }
        catch
        {
            ScratchDirectory.TryDelete(dir);
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        ScratchDirectory.TryDelete(_dir);
    }
}
