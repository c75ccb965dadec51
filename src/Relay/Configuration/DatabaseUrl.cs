namespace Pinhole.Relay.Configuration;

/// <summary>Which database relay.json's <c>"database"</c> names.</summary>
public enum DatabaseKind
{
    /// <summary>SQLite files in <c>dataDir</c> (the default).</summary>
    Sqlite,

    /// <summary>A PostgreSQL server.</summary>
    Postgres,
}

/// <summary>
/// relay.json <c>"database"</c>, parsed in this one place so every store that can live in PostgreSQL
/// (the telemetry history now; the fleet registry later) reads it the same way:
/// absent means SQLite in <c>dataDir</c>, <c>postgres://USER:PASS@HOST:PORT/DB</c> (or <c>postgresql://</c>)
/// means PostgreSQL. The password never appears in <see cref="ToString"/> or in an error.
/// </summary>
public sealed record DatabaseUrl
{
    private DatabaseUrl(DatabaseKind kind, string host, int port, string database, string user, string password, string? sslMode)
    {
        Kind = kind;
        Host = host;
        Port = port;
        Database = database;
        User = user;
        Password = password;
        SslMode = sslMode;
    }

    /// <summary>The default: SQLite in dataDir.</summary>
    public static DatabaseUrl Sqlite { get; } = new(DatabaseKind.Sqlite, "", 0, "", "", "", null);

    /// <summary>SQLite or PostgreSQL.</summary>
    public DatabaseKind Kind { get; }

    /// <summary>PostgreSQL host name or address (a directory for a Unix socket, written <c>%2Fpath</c> in the URL).</summary>
    public string Host { get; }

    /// <summary>PostgreSQL port (5432 when the URL has none).</summary>
    public int Port { get; }

    /// <summary>Database name.</summary>
    public string Database { get; }

    /// <summary>User name.</summary>
    public string User { get; }

    /// <summary>Password (may be empty).</summary>
    public string Password { get; }

    /// <summary><c>?sslmode=</c> from the URL (disable, prefer, require, verify-ca, verify-full), or null.</summary>
    public string? SslMode { get; }

    /// <summary>Parses the value of <c>"database"</c>; false with a one-line reason (never the password) when it is not usable.</summary>
    public static bool TryParse(string? text, out DatabaseUrl url, out string error)
    {
        url = Sqlite;
        error = "";
        if (string.IsNullOrWhiteSpace(text) || text == "sqlite") return true;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != "postgres" && uri.Scheme != "postgresql"))
        {
            error = "must be \"sqlite\" or postgres://USER:PASS@HOST:PORT/DATABASE";
            return false;
        }
        var userInfo = uri.UserInfo.Split(':', 2);
        var user = Uri.UnescapeDataString(userInfo[0]);
        var password = userInfo.Length > 1 ? Uri.UnescapeDataString(userInfo[1]) : "";
        var database = Uri.UnescapeDataString(uri.AbsolutePath.Trim('/'));
        var host = Uri.UnescapeDataString(uri.Host);
        if (user.Length == 0) { error = "postgres:// URL needs a user (postgres://USER:PASS@HOST:PORT/DATABASE)"; return false; }
        if (host.Length == 0) { error = "postgres:// URL needs a host"; return false; }
        if (database.Length == 0 || database.Contains('/', StringComparison.Ordinal)) { error = "postgres:// URL needs one database name after the host (…/DATABASE)"; return false; }
        string? sslMode = null;
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var kv = pair.Split('=', 2);
            var key = Uri.UnescapeDataString(kv[0]);
            var value = kv.Length > 1 ? Uri.UnescapeDataString(kv[1]) : "";
            if (key == "sslmode" && value is "disable" or "allow" or "prefer" or "require" or "verify-ca" or "verify-full") sslMode = value;
            else { error = $"postgres:// URL: unknown or bad query parameter \"{key}\" (only sslmode=disable|prefer|require|verify-ca|verify-full)"; return false; }
        }
        url = new DatabaseUrl(DatabaseKind.Postgres, host, uri.IsDefaultPort || uri.Port <= 0 ? 5432 : uri.Port, database, user, password, sslMode);
        return true;
    }

    /// <summary>An Npgsql connection string for a PostgreSQL URL.</summary>
    public string ToNpgsqlConnectionString()
    {
        if (Kind != DatabaseKind.Postgres) throw new InvalidOperationException("not a PostgreSQL database URL");
        var b = new Npgsql.NpgsqlConnectionStringBuilder
        {
            Host = Host,
            Port = Port,
            Database = Database,
            Username = User,
            Password = Password,
            ApplicationName = "pinhole-relay",
        };
        if (SslMode is not null) b.SslMode = Enum.Parse<Npgsql.SslMode>(SslMode.Replace("-", "", StringComparison.Ordinal), ignoreCase: true);
        return b.ConnectionString;
    }

    /// <summary>The URL without its password, for logs and messages.</summary>
    public override string ToString() => Kind == DatabaseKind.Sqlite ? "sqlite" : $"postgres://{User}@{Host}:{Port}/{Database}";
}
