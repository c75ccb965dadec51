using System.Globalization;
using System.Text.RegularExpressions;

namespace Pinhole.Testing;

/// <summary>How a <see cref="PostgresServer"/> runs.</summary>
public sealed record PostgresOptions
{
    /// <summary>
    /// Keep PostgreSQL's defaults (fsync, synchronous commit): for benchmarks that compare with the
    /// real thing. Off by default: tests do not test PostgreSQL's durability, and fsync on a loaded
    /// machine only makes them slow.
    /// </summary>
    public bool Durable { get; init; }

    /// <summary>How long initdb plus start-up may take.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Extra <c>-c name=value</c> settings.</summary>
    public IReadOnlyList<string> Settings { get; init; } = [];
}

/// <summary>
/// A PostgreSQL server of the test's own: <c>initdb</c> into a fresh temp dir, then <c>postgres</c>
/// listening on a free 127.0.0.1 port with its Unix socket in that dir, password (SCRAM) login for
/// <see cref="User"/>. As root it runs as the <c>postgres</c> OS user (PostgreSQL refuses root), through
/// <c>setpriv</c>, which execs, so the process the test holds is the server itself. Always stopped and
/// its directory deleted on dispose.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    private static readonly Regex Ready = new("database system is ready to accept connections", RegexOptions.CultureInvariant);
    private PeerProcess? _process;

    private PostgresServer(string directory, string binDirectory, int port, string password)
    {
        Directory = directory;
        BinDirectory = binDirectory;
        Port = port;
        Password = password;
    }

    /// <summary>The superuser the server was initialised with.</summary>
    public string User => "pinhole";

    /// <summary>Its password.</summary>
    public string Password { get; }

    /// <summary>Always 127.0.0.1.</summary>
    public string Host => "127.0.0.1";

    /// <summary>The TCP port.</summary>
    public int Port { get; }

    /// <summary>The server's own folder: data/ and the socket.</summary>
    public string Directory { get; }

    /// <summary>Where initdb and postgres were found (e.g. /usr/lib/postgresql/15/bin).</summary>
    public string BinDirectory { get; }

    /// <summary>The server's log so far.</summary>
    public string Log => _process?.Output ?? "";

    /// <summary>The newest installed PostgreSQL's bin dir (Debian: /usr/lib/postgresql/N/bin), or null.</summary>
    public static string? FindBinDirectory()
    {
        const string root = "/usr/lib/postgresql";
        if (!System.IO.Directory.Exists(root)) return null;
        return System.IO.Directory.GetDirectories(root)
            .Select(d => (Dir: Path.Combine(d, "bin"), Version: int.TryParse(Path.GetFileName(d), CultureInfo.InvariantCulture, out var v) ? v : 0))
            .Where(x => File.Exists(Path.Combine(x.Dir, "initdb")) && File.Exists(Path.Combine(x.Dir, "postgres")))
            .OrderByDescending(x => x.Version)
            .Select(x => x.Dir)
            .FirstOrDefault();
    }

    /// <summary>Null when a server can be started here, otherwise why not.</summary>
    public static string? SkipReason
    {
        get
        {
            if (FindBinDirectory() is null) return "PostgreSQL server is not installed (Debian package postgresql: /usr/lib/postgresql/N/bin/initdb)";
            if (Tools.IsRoot)
            {
                if (Tools.SkipReason("setpriv", "chown") is { } tools) return tools;
                if (!File.ReadLines("/etc/passwd").Any(l => l.StartsWith("postgres:", StringComparison.Ordinal)))
                    return "running as root and there is no 'postgres' OS user to run PostgreSQL as";
            }
            return null;
        }
    }

    /// <summary>Initialises and starts a server; throws <see cref="PeerProcessException"/> with its log when it does not come up.</summary>
    public static async Task<PostgresServer> StartAsync(PostgresOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new PostgresOptions();
        var bin = FindBinDirectory() ?? throw new InvalidOperationException(SkipReason);
        var dir = System.IO.Directory.CreateTempSubdirectory("pinhole-pg-").FullName;
        var server = new PostgresServer(dir, bin, FreePort.Get(), Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(12)));
        try
        {
            await server.InitAsync(options, cancellationToken);
            await server.StartProcessAsync(options, cancellationToken);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private string DataDirectory => Path.Combine(Directory, "data");

    private async Task InitAsync(PostgresOptions options, CancellationToken cancellationToken)
    {
        var pwfile = Path.Combine(Directory, "pwfile");
        await File.WriteAllTextAsync(pwfile, Password + "\n", cancellationToken);
        if (Tools.IsRoot) await Command.RunCheckedAsync("chown", ["-R", "postgres:postgres", Directory], TimeSpan.FromSeconds(30), cancellationToken);
        var result = await Command.RunAsync(AsServerUser(), [.. AsServerUserArguments(Path.Combine(BinDirectory, "initdb"),
            "-D", DataDirectory, "-U", User, "--pwfile=" + pwfile, "-A", "scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")],
            options.StartTimeout, cancellationToken);
        if (!result.Succeeded) throw new PeerProcessException($"initdb failed: {result}");
        File.Delete(pwfile);
    }

    private async Task StartProcessAsync(PostgresOptions options, CancellationToken cancellationToken)
    {
        var args = new List<string>
        {
            "-D", DataDirectory, "-p", Port.ToString(CultureInfo.InvariantCulture), "-k", Directory,
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=50", "-c", "log_min_messages=warning",
        };
        if (!options.Durable) args.AddRange(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]);
        foreach (var s in options.Settings) args.AddRange(["-c", s]);
        _process = await PeerProcess.StartAsync(new PeerStartInfo(AsServerUser(), AsServerUserArguments(Path.Combine(BinDirectory, "postgres"), [.. args]))
        {
            Name = "postgres",
            ReadyLine = Ready,
            ReadyTimeout = options.StartTimeout,
        }, cancellationToken);
    }

    private static string AsServerUser() => Tools.IsRoot ? "setpriv" : "env";

    private static IReadOnlyList<string> AsServerUserArguments(string program, params string[] args) => Tools.IsRoot
        ? ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", program, .. args]
        : [program, .. args];

    /// <summary><c>postgres://USER:PASS@127.0.0.1:PORT/DATABASE</c>, as relay.json's <c>"database"</c> takes it.</summary>
    public string DatabaseUrl(string database) => $"postgres://{User}:{Password}@{Host}:{Port}/{database}";

    /// <summary>An ADO.NET connection string for <paramref name="database"/>.</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host={Host};Port={Port};Username={User};Password={Password};Database={database};Pooling=false";

    /// <summary>Creates a database (owned by <see cref="User"/>).</summary>
    public async Task CreateDatabaseAsync(string name, CancellationToken cancellationToken = default)
    {
        await using var db = new Npgsql.NpgsqlConnection(ConnectionString());
        await db.OpenAsync(cancellationToken);
        await using var cmd = db.CreateCommand();
        cmd.CommandText = $"CREATE DATABASE \"{name.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";
        await cmd.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            // SIGTERM is PostgreSQL's "smart" shutdown; the PeerProcess kills it if it dawdles.
            await _process.StopAsync(TimeSpan.FromSeconds(10));
            await _process.DisposeAsync();
            _process = null;
        }
        ScratchDirectory.TryDelete(Directory);
    }
}
