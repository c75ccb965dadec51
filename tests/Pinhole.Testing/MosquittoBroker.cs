using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>How a <see cref="MosquittoBroker"/> is configured.</summary>
public sealed record MosquittoOptions
{
    /// <summary>Keep retained messages, subscriptions and queued QoS 1/2 messages in a data dir of its own, saved on every change.</summary>
    public bool Persistence { get; init; }

    /// <summary>When set (with <see cref="Password"/>), clients must log in; anonymous clients are refused.</summary>
    public string? Username { get; init; }

    /// <summary>The password for <see cref="Username"/>.</summary>
    public string? Password { get; init; }

    /// <summary>Extra lines appended to the generated mosquitto.conf (global options; listeners share them).</summary>
    public IReadOnlyList<string> ExtraConfig { get; init; } = [];

    /// <summary>How long the broker may take to start listening.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// When set, both listeners use TLS with a server certificate this CA issues for
    /// <see cref="BindAddress"/>: URLs become mqtts:// and wss://, and the mosquitto_pub/sub helpers
    /// trust the CA. The CA stays the caller's to dispose.
    /// </summary>
    public TestCertificateAuthority? Tls { get; init; }

    /// <summary>Run the broker inside this network namespace (e.g. <see cref="NatTopology.Wan"/>); null runs it in the test's own.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>
    /// The address both listeners bind to: 127.0.0.1 unless set (inside a namespace, its own
    /// address such as <see cref="NatTopology.WanAddress"/>). Ports are picked with
    /// <see cref="FreePort"/>, which is exact only in the test's own namespace; a fresh namespace
    /// has every port free anyway.
    /// </summary>
    public string BindAddress { get; init; } = "127.0.0.1";

    /// <summary>
    /// When set, two more listeners use TLS with a server certificate this CA issues for
    /// <see cref="BindAddress"/> and localhost: MQTT over TLS (<see cref="MosquittoBroker.TlsPort"/>) and
    /// WebSocket over TLS (<see cref="MosquittoBroker.SecureWebSocketPort"/>), next to the plain ones,
    /// so one broker serves all four transports. Cannot be combined with <see cref="Tls"/>. The CA
    /// stays the caller's to dispose.
    /// </summary>
    public TestCertificateAuthority? SecureListeners { get; init; }

    /// <summary>
    /// When set, the lines of an ACL file (e.g. <c>topic readwrite t/#</c>) that every client is held to:
    /// topics not granted are dropped on publish and not delivered on subscribe. Null: no ACL.
    /// </summary>
    public IReadOnlyList<string>? Acl { get; init; }
}

/// <summary>
/// A Mosquitto broker of the test's own: an MQTT listener and a WebSocket listener on free
/// 127.0.0.1 ports, a generated config in a temp dir, optional persistence and password.
/// <see cref="StopAsync"/> and <see cref="StartAgainAsync"/> reuse the same ports and data dir, so
/// clients can reconnect and retained/queued messages survive when persistence is on.
/// Optionally TLS listeners next to the plain ones (<see cref="MosquittoOptions.SecureListeners"/>),
/// an ACL (<see cref="MosquittoOptions.Acl"/>), and <see cref="Freeze"/>/<see cref="Resume"/> for a
/// broker that hangs with its sockets open.
/// </summary>
public sealed class MosquittoBroker : IAsyncDisposable
{
    private static readonly Regex Running = new(@"mosquitto version \S+ running", RegexOptions.CultureInvariant);
    private readonly MosquittoOptions _options;
    private PeerProcess? _process;

    private MosquittoBroker(MosquittoOptions options, string directory, int[] ports)
    {
        _options = options;
        Directory = directory;
        TcpPort = ports[0];
        WebSocketPort = ports[1];
        if (options.SecureListeners is not null)
        {
            TlsPort = ports[2];
            SecureWebSocketPort = ports[3];
        }
    }

    /// <summary>Null when mosquitto and its clients are installed, otherwise the skip reason.</summary>
    public static string? SkipReason => Tools.SkipReason("mosquitto", "mosquitto_pub", "mosquitto_sub", "mosquitto_passwd");

    /// <summary>The address the listeners bind to (<see cref="MosquittoOptions.BindAddress"/>).</summary>
    public string Host => _options.BindAddress;

    /// <summary>The plain MQTT (TCP) port.</summary>
    public int TcpPort { get; }

    /// <summary>The MQTT-over-WebSocket port.</summary>
    public int WebSocketPort { get; }

    /// <summary>The MQTT-over-TLS port of <see cref="MosquittoOptions.SecureListeners"/> (0 without them).</summary>
    public int TlsPort { get; }

    /// <summary>The MQTT-over-WebSocket-over-TLS port of <see cref="MosquittoOptions.SecureListeners"/> (0 without them).</summary>
    public int SecureWebSocketPort { get; }

    /// <summary>The PEM file of the CA that issued the broker's certificate (<see cref="MosquittoOptions.SecureListeners"/> or <see cref="MosquittoOptions.Tls"/>); null without TLS.</summary>
    public string? CaFile => (_options.SecureListeners ?? _options.Tls)?.CertificatePath;

    /// <summary><c>mqtts://localhost:PORT</c> of the extra TLS listener (localhost, a name its certificate holds); null without <see cref="MosquittoOptions.SecureListeners"/>.</summary>
    public Uri? SecureTcpUrl => _options.SecureListeners is null ? null : new($"mqtts://localhost:{TlsPort}");

    /// <summary><c>wss://localhost:PORT/mqtt</c> of the extra WebSocket-over-TLS listener; null without <see cref="MosquittoOptions.SecureListeners"/>.</summary>
    public Uri? SecureWebSocketUrl => _options.SecureListeners is null ? null : new($"wss://localhost:{SecureWebSocketPort}/mqtt");

    /// <summary><c>mqtt://HOST:PORT</c> (<c>mqtts://</c> with TLS).</summary>
    public Uri TcpUrl => new($"{(_options.Tls is null ? "mqtt" : "mqtts")}://{Host}:{TcpPort}");

    /// <summary><c>ws://HOST:PORT/mqtt</c> (<c>wss://</c> with TLS; Mosquitto accepts any path, /mqtt is the usual one).</summary>
    public Uri WebSocketUrl => new($"{(_options.Tls is null ? "ws" : "wss")}://{Host}:{WebSocketPort}/mqtt");

    /// <summary>The broker's own folder: mosquitto.conf, the password file, and data/ when persistence is on.</summary>
    public string Directory { get; }

    /// <summary>The persistence folder (exists only with <see cref="MosquittoOptions.Persistence"/>).</summary>
    public string DataDirectory => Path.Combine(Directory, "data");

    /// <summary>The generated config file.</summary>
    public string ConfigPath => Path.Combine(Directory, "mosquitto.conf");

    /// <summary>The options it was started with.</summary>
    public MosquittoOptions Options => _options;

    /// <summary>True while the broker process runs.</summary>
    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The broker's latest log lines (it logs everything to stderr), for diagnosis.</summary>
    public string Log => _process?.Output ?? "";

    /// <summary>The running process (null after <see cref="StopAsync"/> or <see cref="Kill"/>).</summary>
    public PeerProcess? Process => _process;

    /// <summary>The broker's process id (0 when it is not running).</summary>
    public int Pid => _process?.Id ?? 0;

    /// <summary>True between <see cref="Freeze"/> and <see cref="Resume"/>.</summary>
    public bool IsFrozen { get; private set; }

    /// <summary>Starts a broker; throws <see cref="PeerProcessException"/> with its log when it does not come up.</summary>
    public static async Task<MosquittoBroker> StartAsync(MosquittoOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new MosquittoOptions();
        if ((options.Username is null) != (options.Password is null))
            throw new ArgumentException("set both Username and Password, or neither", nameof(options));
        if (options.Tls is not null && options.SecureListeners is not null)
            throw new ArgumentException("set Tls (every listener TLS) or SecureListeners (TLS listeners next to plain ones), not both", nameof(options));
        // Mosquitto cannot bind port 0 and report it, so ports come from FreePort; when another
        // process takes one in between, start over with new ports (only here: StartAgainAsync must
        // keep its ports).
        for (var attempt = 1; ; attempt++)
        {
            var dir = System.IO.Directory.CreateTempSubdirectory("pinhole-mosquitto-").FullName;
            var ports = new List<int>();
            while (ports.Count < (options.SecureListeners is null ? 2 : 4))
            {
                var port = FreePort.Get();
                if (!ports.Contains(port))
                    ports.Add(port);
            }
            var broker = new MosquittoBroker(options, dir, [.. ports]);
            try
            {
                await broker.WriteConfigAsync(cancellationToken);
                await broker.StartProcessAsync(cancellationToken);
                return broker;
            }
            catch (PeerProcessException e) when (attempt < 3 && e.Message.Contains("Address already in use", StringComparison.Ordinal))
            {
                await broker.DisposeAsync();
            }
            catch
            {
                await broker.DisposeAsync();
                throw;
            }
        }
    }

    /// <summary>Stops gracefully (SIGTERM: Mosquitto saves its database and closes clients) and waits for it.</summary>
    public async Task StopAsync()
    {
        if (_process is null)
            return;
        Resume(); // a stopped process would not act on SIGTERM
        await _process.StopAsync(TimeSpan.FromSeconds(10));
        await _process.DisposeAsync();
        _process = null;
    }

    /// <summary>Kills the broker at once (SIGKILL), as a power cut would; only what was autosaved survives.</summary>
    public void Kill()
    {
        _process?.Dispose();
        _process = null;
        IsFrozen = false;
    }

    /// <summary>
    /// Freezes the broker (SIGSTOP): its sockets stay open and connects still complete in the kernel,
    /// but nothing is answered, as with a hung broker or a silently dropped link. <see cref="Resume"/> undoes it.
    /// </summary>
    public void Freeze()
    {
        if (_process is null || _process.HasExited)
            throw new InvalidOperationException("the broker is not running");
        if (!Posix.Kill(_process.Id, Posix.SIGSTOP))
            throw new InvalidOperationException($"cannot SIGSTOP mosquitto (pid {_process.Id})");
        IsFrozen = true;
    }

    /// <summary>Lets a frozen broker run again (SIGCONT); does nothing when it is not frozen.</summary>
    public void Resume()
    {
        if (!IsFrozen)
            return;
        IsFrozen = false;
        if (_process is { HasExited: false })
            Posix.Kill(_process.Id, Posix.SIGCONT);
    }

    /// <summary>Starts the broker again on the same ports, config and data dir.</summary>
    public async Task StartAgainAsync(CancellationToken cancellationToken = default)
    {
        if (IsRunning)
            throw new InvalidOperationException("the broker is still running; StopAsync or Kill it first");
        _process?.Dispose();
        _process = null;
        IsFrozen = false;
        await StartProcessAsync(cancellationToken);
    }

    /// <summary>Arguments for mosquitto_pub/mosquitto_sub to reach this broker over TCP (host, port, and the login when one is set).</summary>
    public IReadOnlyList<string> ClientArguments()
    {
        var args = new List<string> { "-h", Host, "-p", TcpPort.ToString(CultureInfo.InvariantCulture) };
        if (_options.Username is not null)
            args.AddRange(["-u", _options.Username, "-P", _options.Password!]);
        if (_options.Tls is not null)
            args.AddRange(["--cafile", _options.Tls.CertificatePath]);
        return args;
    }

    /// <summary>Publishes one message with mosquitto_pub over TCP (from the broker's namespace) (QoS 1 unless given); throws with its output when it fails.</summary>
    public async Task PublishAsync(string topic, string payload, bool retain = false, int qos = 1, CancellationToken cancellationToken = default)
    {
        var args = ClientArguments().Concat(["-q", qos.ToString(CultureInfo.InvariantCulture), "-t", topic, "-m", payload]).ToList();
        if (retain)
            args.Add("-r");
        var result = await Command.RunInAsync(_options.NetworkNamespace, "mosquitto_pub", args, TimeSpan.FromSeconds(15), cancellationToken);
        if (!result.Succeeded)
            throw new InvalidOperationException($"mosquitto_pub failed: {result}\n--- broker log ---\n{Log}");
    }

    /// <summary>
    /// Subscribes with mosquitto_sub over TCP (from the broker's namespace) and returns the first <paramref name="count"/> messages
    /// as "topic payload" lines (an empty list when none came within <paramref name="timeout"/>).
    /// </summary>
    public async Task<IReadOnlyList<string>> ReceiveAsync(string topicFilter, int count, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var args = ClientArguments().Concat(["-v", "-t", topicFilter, "-C", count.ToString(CultureInfo.InvariantCulture),
            "-W", Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds)).ToString(CultureInfo.InvariantCulture)]);
        var result = await Command.RunInAsync(_options.NetworkNamespace, "mosquitto_sub", args, timeout + TimeSpan.FromSeconds(5), cancellationToken);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    /// <summary>Stops the broker and deletes its folder.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            Resume();
            await _process.DisposeAsync();
            _process = null;
        }
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"mosquitto tcp={TcpPort} ws={WebSocketPort} dir={Directory}";

    private async Task WriteConfigAsync(CancellationToken cancellationToken)
    {
        var conf = new StringBuilder();
        conf.AppendLine("# generated by Pinhole.Testing.MosquittoBroker");
        // Running as root, mosquitto would otherwise switch to the mosquitto user and lose access to our temp dir.
        conf.AppendLine("user root");
        conf.AppendLine("per_listener_settings false");
        // stderr, not stdout: stdout into a pipe is block-buffered and the log would arrive late or never.
        conf.AppendLine("log_dest stderr");
        conf.AppendLine("log_type all");
        conf.AppendLine("connection_messages true");
        conf.AppendLine("log_timestamp_format %H:%M:%S");
        if (_options.Username is not null)
        {
            var passwordFile = Path.Combine(Directory, "passwd");
            await File.WriteAllTextAsync(passwordFile, "", cancellationToken);
            await Command.RunCheckedAsync("mosquitto_passwd", ["-b", passwordFile, _options.Username, _options.Password!], TimeSpan.FromSeconds(15), cancellationToken);
            conf.AppendLine("allow_anonymous false");
            conf.AppendLine(CultureInfo.InvariantCulture, $"password_file {passwordFile}");
        }
        else
        {
            conf.AppendLine("allow_anonymous true");
        }
        if (_options.Persistence)
        {
            System.IO.Directory.CreateDirectory(DataDirectory);
            conf.AppendLine("persistence true");
            conf.AppendLine(CultureInfo.InvariantCulture, $"persistence_location {DataDirectory}/");
            // With autosave_on_changes the interval counts changes, not seconds: save after every one,
            // so even Kill() loses nothing that was acknowledged.
            conf.AppendLine("autosave_on_changes true");
            conf.AppendLine("autosave_interval 1");
        }
        if (_options.Acl is not null)
        {
            var aclFile = Path.Combine(Directory, "acl");
            await File.WriteAllLinesAsync(aclFile, _options.Acl, cancellationToken);
            conf.AppendLine(CultureInfo.InvariantCulture, $"acl_file {aclFile}");
        }
        foreach (var line in _options.ExtraConfig)
            conf.AppendLine(line);
        var tls = _options.Tls?.IssueServerCertificate(Host, "localhost");
        foreach (var (port, protocol) in new[] { (TcpPort, "mqtt"), (WebSocketPort, "websockets") })
        {
            conf.AppendLine(CultureInfo.InvariantCulture, $"listener {port} {Host}");
            conf.AppendLine(CultureInfo.InvariantCulture, $"protocol {protocol}");
            if (tls is not null)
            {
                conf.AppendLine(CultureInfo.InvariantCulture, $"certfile {tls.CertificatePath}");
                conf.AppendLine(CultureInfo.InvariantCulture, $"keyfile {tls.KeyPath}");
            }
        }
        tls?.Certificate.Dispose();
        if (_options.SecureListeners is not null)
        {
            var secure = _options.SecureListeners.IssueServerCertificate(Host, "localhost");
            foreach (var (port, protocol) in new[] { (TlsPort, "mqtt"), (SecureWebSocketPort, "websockets") })
            {
                conf.AppendLine(CultureInfo.InvariantCulture, $"listener {port} {Host}");
                conf.AppendLine(CultureInfo.InvariantCulture, $"protocol {protocol}");
                conf.AppendLine(CultureInfo.InvariantCulture, $"certfile {secure.CertificatePath}");
                conf.AppendLine(CultureInfo.InvariantCulture, $"keyfile {secure.KeyPath}");
            }
            secure.Certificate.Dispose();
        }
        await File.WriteAllTextAsync(ConfigPath, conf.ToString(), cancellationToken);
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        var info = new PeerStartInfo("mosquitto", "-c", ConfigPath)
        {
            Name = $"mosquitto:{TcpPort}" + (_options.NetworkNamespace is null ? "" : "@" + _options.NetworkNamespace),
            NetworkNamespace = _options.NetworkNamespace,
            ReadyLine = Running,
            ReadyTcpHost = Host,
            ReadyTcpPort = TcpPort,
            // The other listeners must accept too; the TCP one alone is not enough.
            ReadyCheck = AllListenersAcceptAsync,
            ReadyTimeout = _options.StartTimeout,
        };
        _process = await PeerProcess.StartAsync(info, cancellationToken);
    }

    private async Task<bool> AllListenersAcceptAsync(CancellationToken cancellationToken)
    {
        var address = System.Net.IPAddress.Parse(Host);
        foreach (var port in new[] { WebSocketPort, TlsPort, SecureWebSocketPort }.Where(p => p != 0))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!await NetworkNamespace.CanConnectAsync(_options.NetworkNamespace, address, port))
                return false;
        }
        return true;
    }
}
