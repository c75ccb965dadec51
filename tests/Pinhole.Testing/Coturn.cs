using System.Globalization;

namespace Pinhole.Testing;

/// <summary>
/// Debian's coturn (<c>turnserver</c>) on loopback for one test: TURN over UDP and TCP on one port,
/// relay addresses on 127.0.0.1, time-limited credentials checked with a shared secret (TURN REST
/// API, <c>use-auth-secret</c>), loopback peers allowed (the relay under test is one). No config
/// file, no database outside the temp dir, no CLI, no TLS.
/// </summary>
public sealed class Coturn : IAsyncDisposable
{
    /// <summary>The server binary.</summary>
    public const string Program = "turnserver";

    private readonly PeerProcess _process;
    private readonly string _dir;

    private Coturn(PeerProcess process, string dir, int port, string secret)
    {
        _process = process;
        _dir = dir;
        Port = port;
        Secret = secret;
    }

    /// <summary>Null when coturn is installed, otherwise the skip reason.</summary>
    public static string? SkipReason => Tools.SkipReason(Program);

    /// <summary>The TURN port (UDP and TCP) on 127.0.0.1.</summary>
    public int Port { get; }

    /// <summary>The shared secret (<c>static-auth-secret</c>).</summary>
    public string Secret { get; }

    /// <summary>What the server logged.</summary>
    public string Log => _process.Output;

    /// <summary>Starts the server on a free port with <paramref name="secret"/>.</summary>
    public static async Task<Coturn> StartAsync(string secret, Action<string>? onOutputLine = null)
    {
        var port = FreePort.GetTcpAndUdp();
        var dir = Directory.CreateTempSubdirectory("pinhole-coturn-").FullName;
        // Relay ports: a small range near a free port (coturn skips ports it cannot bind).
        var relayMin = FreePort.GetUdp();
        var relayMax = Math.Min(65535, relayMin + 40);
        var info = new PeerStartInfo(Tools.Require(Program),
            "-n", "--no-cli", "--no-tls", "--no-dtls",
            "--listening-ip=127.0.0.1", $"--listening-port={port.ToString(CultureInfo.InvariantCulture)}",
            "--relay-ip=127.0.0.1", $"--min-port={relayMin.ToString(CultureInfo.InvariantCulture)}", $"--max-port={relayMax.ToString(CultureInfo.InvariantCulture)}",
            "--use-auth-secret", $"--static-auth-secret={secret}", "--realm=pinhole.test", "--fingerprint",
            "--allow-loopback-peers", "--no-multicast-peers",
            $"--userdb={Path.Combine(dir, "turndb")}", $"--pidfile={Path.Combine(dir, "turnserver.pid")}",
            "--log-file=stdout", "--simple-log", "--verbose")
        {
            Name = "coturn",
            WorkingDirectory = dir,
            ReadyTcpPort = port,
            OnOutputLine = onOutputLine,
        };
        try
        {
            var process = await PeerProcess.StartAsync(info);
            return new Coturn(process, dir, port, secret);
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
