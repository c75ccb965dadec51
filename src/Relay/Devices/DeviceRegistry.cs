using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Devices;

/// <summary>
/// The devices allowed to open an uplink: those in relay.json plus those added at run time with
/// <c>pinhole-relay devices add</c>, which live in an embedded SQLite database in <c>dataDir</c>.
/// Tokens are stored and held only as salted PBKDF2-SHA256 hashes.
/// </summary>
public sealed class DeviceRegistry : IDeviceAuthenticator
{
    private const int Iterations = 20_000;
    private const int HashBytes = 32;
    private readonly Dictionary<string, StoredToken> _fromConfig = new(StringComparer.Ordinal);
    private readonly string _connectionString;

    /// <summary>Opens (creating when needed) the registry database in <paramref name="dataDir"/>.</summary>
    public DeviceRegistry(string dataDir, IEnumerable<DeviceConfig> configured)
    {
        Directory.CreateDirectory(dataDir);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDir, "relay.db"),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
        }.ToString();
        foreach (var d in configured) _fromConfig[d.Id] = StoredToken.Create(d.Token);
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS devices (
                id TEXT PRIMARY KEY NOT NULL,
                salt BLOB NOT NULL,
                token_hash BLOB NOT NULL,
                created_utc TEXT NOT NULL
            );
            """;
        cmd.ExecuteNonQuery();
    }

    /// <summary>Creates a device with a new random token and returns the token (shown once, never stored).</summary>
    /// <exception cref="InvalidOperationException">The id is invalid or already exists.</exception>
    public string Add(string deviceId)
    {
        if (!RelayConfigLoader.IsValidDeviceId(deviceId))
            throw new InvalidOperationException($"device id \"{deviceId}\" must be 1-64 letters, digits, '-' or '_'");
        if (_fromConfig.ContainsKey(deviceId))
            throw new InvalidOperationException($"device \"{deviceId}\" is already configured in relay.json");
        var token = Base64Url(RandomNumberGenerator.GetBytes(32));
        var stored = StoredToken.Create(token);
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "INSERT INTO devices(id, salt, token_hash, created_utc) VALUES ($id, $salt, $hash, $now)";
        cmd.Parameters.AddWithValue("$id", deviceId);
        cmd.Parameters.AddWithValue("$salt", stored.Salt);
        cmd.Parameters.AddWithValue("$hash", stored.Hash);
        cmd.Parameters.AddWithValue("$now", DateTime.UtcNow.ToString("O"));
        try
        {
            cmd.ExecuteNonQuery();
        }
        catch (SqliteException e) when (e.SqliteErrorCode == 19) // SQLITE_CONSTRAINT
        {
            throw new InvalidOperationException($"device \"{deviceId}\" already exists", e);
        }
        return token;
    }

    /// <summary>Removes a device added at run time. Returns false when there was none.</summary>
    public bool Remove(string deviceId)
    {
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "DELETE FROM devices WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", deviceId);
        return cmd.ExecuteNonQuery() > 0;
    }

    /// <summary>Every known device id: configured ones and stored ones.</summary>
    public IReadOnlyList<string> List()
    {
        var ids = new SortedSet<string>(_fromConfig.Keys, StringComparer.Ordinal);
        using var db = Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT id FROM devices";
        using var r = cmd.ExecuteReader();
        while (r.Read()) ids.Add(r.GetString(0));
        return [.. ids];
    }

    /// <inheritdoc />
    public async ValueTask<bool> AuthenticateAsync(string deviceId, string token, CancellationToken cancellationToken)
    {
        var stored = _fromConfig.GetValueOrDefault(deviceId) ?? await LoadAsync(deviceId, cancellationToken).ConfigureAwait(false);
        if (stored is null)
        {
            // Same work as a real check so unknown ids cannot be told apart by timing.
            StoredToken.Dummy.Matches(token);
            return false;
        }
        return stored.Matches(token);
    }

    private async Task<StoredToken?> LoadAsync(string deviceId, CancellationToken cancellationToken)
    {
        await using var db = Open();
        await using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT salt, token_hash FROM devices WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", deviceId);
        await using var r = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        if (!await r.ReadAsync(cancellationToken).ConfigureAwait(false)) return null;
        return new StoredToken((byte[])r[0], (byte[])r[1]);
    }

    private SqliteConnection Open()
    {
        var db = new SqliteConnection(_connectionString);
        db.Open();
        return db;
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    private sealed record StoredToken(byte[] Salt, byte[] Hash)
    {
        public static readonly StoredToken Dummy = Create("dummy-token-for-constant-time");

        public static StoredToken Create(string token)
        {
            var salt = RandomNumberGenerator.GetBytes(16);
            return new StoredToken(salt, Derive(token, salt));
        }

        public bool Matches(string token) => CryptographicOperations.FixedTimeEquals(Derive(token, Salt), Hash);

        private static byte[] Derive(string token, byte[] salt) =>
            Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(token), salt, Iterations, HashAlgorithmName.SHA256, HashBytes);
    }
}
