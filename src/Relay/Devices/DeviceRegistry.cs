using System.Security.Cryptography;
using System.Text;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Fleet;

namespace Pinhole.Relay.Devices;

/// <summary>A device as the registry knows it.</summary>
/// <param name="Id">The device id.</param>
/// <param name="Source"><c>relay.json</c> or <c>stored</c> (added at run time); a relay.json device whose token was rotated or revoked is <c>relay.json+stored</c>.</param>
/// <param name="Revoked">When its token was revoked, if it was.</param>
public sealed record DeviceEntry(string Id, string Source, DateTimeOffset? Revoked);

/// <summary>
/// The devices allowed to open an uplink: those in relay.json plus those added at run time with
/// <c>pinhole-relay devices add</c> (or the fleet API), which live in the fleet store in
/// <c>dataDir</c>. A stored row overrides a relay.json entry of the same id, which is how a
/// relay.json device's token is rotated or revoked without editing the file. Tokens are stored and
/// held only as salted PBKDF2-SHA256 hashes.
/// </summary>
public sealed class DeviceRegistry : IDeviceAuthenticator
{
    private const int Iterations = 20_000;
    private const int HashBytes = 32;
    private readonly Dictionary<string, StoredToken> _fromConfig = new(StringComparer.Ordinal);
    private readonly IFleetStore _store;

    /// <summary>Opens (creating when needed) the registry database in <paramref name="dataDir"/>.</summary>
    public DeviceRegistry(string dataDir, IEnumerable<DeviceConfig> configured)
        : this(new SqliteFleetStore(dataDir), configured)
    {
    }

    /// <summary>A registry over an open fleet store.</summary>
    public DeviceRegistry(IFleetStore store, IEnumerable<DeviceConfig> configured)
    {
        ArgumentNullException.ThrowIfNull(configured);
        _store = store ?? throw new ArgumentNullException(nameof(store));
        foreach (var d in configured) _fromConfig[d.Id] = StoredToken.Create(d.Token);
    }

    /// <summary>Creates a device with a new random token and returns the token (shown once, never stored).</summary>
    /// <exception cref="InvalidOperationException">The id is invalid or already exists.</exception>
    public string Add(string deviceId)
    {
        if (!RelayConfigLoader.IsValidDeviceId(deviceId))
            throw new InvalidOperationException($"device id \"{deviceId}\" must be 1-64 letters, digits, '-' or '_'");
        if (_fromConfig.ContainsKey(deviceId))
            throw new InvalidOperationException($"device \"{deviceId}\" is already configured in relay.json");
        var token = NewToken();
        var stored = StoredToken.Create(token);
        if (!_store.AddDevice(deviceId, stored.Salt, stored.Hash, DateTimeOffset.UtcNow))
            throw new InvalidOperationException($"device \"{deviceId}\" already exists");
        return token;
    }

    /// <summary>Removes a device added at run time. Returns false when there was none, or when the device is in
    /// relay.json (it is removed there; dropping its stored row would undo a rotation or revocation).</summary>
    public bool Remove(string deviceId) => !_fromConfig.ContainsKey(deviceId) && _store.RemoveDevice(deviceId);

    /// <summary>Gives a known device a new random token and returns it; the old token stops working at once.</summary>
    /// <exception cref="InvalidOperationException">The device is unknown.</exception>
    public string RotateToken(string deviceId)
    {
        if (!Exists(deviceId)) throw new InvalidOperationException($"no device \"{deviceId}\"");
        var token = NewToken();
        var stored = StoredToken.Create(token);
        _store.SetDeviceToken(deviceId, stored.Salt, stored.Hash, DateTimeOffset.UtcNow);
        return token;
    }

    /// <summary>Revokes a known device's token: it cannot open an uplink until its token is rotated.</summary>
    /// <exception cref="InvalidOperationException">The device is unknown.</exception>
    public void Revoke(string deviceId)
    {
        if (!Exists(deviceId)) throw new InvalidOperationException($"no device \"{deviceId}\"");
        var unusable = StoredToken.Create(NewToken()); // the row needs a hash; nobody ever learns this token
        _store.RevokeDevice(deviceId, unusable.Salt, unusable.Hash, DateTimeOffset.UtcNow);
    }

    /// <summary>True when the device is in relay.json or stored.</summary>
    public bool Exists(string deviceId) => _fromConfig.ContainsKey(deviceId) || _store.GetDevice(deviceId) is not null;

    /// <summary>Every known device id: configured ones and stored ones.</summary>
    public IReadOnlyList<string> List() => [.. Describe().Select(d => d.Id)];

    /// <summary>Every known device with where it comes from and whether it is revoked, ordered by id.</summary>
    public IReadOnlyList<DeviceEntry> Describe()
    {
        var stored = _store.ListDevices().ToDictionary(d => d.Id, StringComparer.Ordinal);
        var ids = new SortedSet<string>(_fromConfig.Keys, StringComparer.Ordinal);
        ids.UnionWith(stored.Keys);
        return [.. ids.Select(id =>
        {
            var row = stored.GetValueOrDefault(id);
            var source = _fromConfig.ContainsKey(id) ? (row is null ? "relay.json" : "relay.json+stored") : "stored";
            return new DeviceEntry(id, source, row?.Revoked);
        })];
    }

    /// <summary>A stamp per stored device that changes whenever its token is rotated or revoked (or the row removed).
    /// The relay compares successive stamps to drop uplinks whose credentials changed, also when another process
    /// (the CLI) changed them.</summary>
    public IReadOnlyDictionary<string, long> CredentialStamps() =>
        _store.ListDevices().ToDictionary(d => d.Id, d => d.Revoked is null ? d.Generation : -d.Generation, StringComparer.Ordinal);

    /// <inheritdoc />
    public async ValueTask<bool> AuthenticateAsync(string deviceId, string token, CancellationToken cancellationToken)
    {
        await Task.Yield();
        var row = _store.GetDevice(deviceId);
        StoredToken? stored = row is not null ? (row.Revoked is null ? new StoredToken(row.Salt, row.Hash) : null) : _fromConfig.GetValueOrDefault(deviceId);
        if (stored is null)
        {
            // Same work as a real check so unknown (or revoked) ids cannot be told apart by timing.
            StoredToken.Dummy.Matches(token);
            return false;
        }
        return stored.Matches(token);
    }

    private static string NewToken() => Base64Url(RandomNumberGenerator.GetBytes(32));

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
