using System.Collections.Concurrent;
using System.Data.Common;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// This relay's side of device ownership (docs/scale-out.md): claims a device in the shared database when its
/// uplink becomes live here, renews the leases of the devices it holds every <see cref="RenewInterval"/>,
/// releases them when the uplink ends, and tells the viewer endpoints where a device held by another relay is.
/// Without a shared database (<see cref="IDeviceOwnership"/> absent) it does nothing and redirects nowhere.
/// Database trouble never breaks an uplink or a viewer: it is logged, the lease is retried on the next beat.
/// </summary>
public sealed partial class DeviceOwnershipService : BackgroundService
{
    /// <summary>How long a claim lasts without renewal: a dead relay's devices are free again after this.</summary>
    public static readonly TimeSpan Lease = TimeSpan.FromSeconds(15);

    /// <summary>How often the held leases are renewed.</summary>
    public static readonly TimeSpan RenewInterval = TimeSpan.FromSeconds(5);

    private readonly IDeviceOwnership? _store;
    private readonly TimeProvider _time;
    private readonly ILogger<DeviceOwnershipService> _logger;
    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);

    /// <summary>Creates the service; <paramref name="store"/> null means a single relay (SQLite).</summary>
    public DeviceOwnershipService(RelayConfig config, TimeProvider time, ILogger<DeviceOwnershipService> logger, IDeviceOwnership? store = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        _store = store;
        _time = time;
        _logger = logger;
        Me = new RelayIdentity(Guid.NewGuid().ToString("N"), config.PublicUrl?.TrimEnd('/'), config.PublicRtsp);
    }

    /// <summary>This relay's identity (a fresh id per process).</summary>
    public RelayIdentity Me { get; private set; }

    /// <summary>True when there is a shared database to record ownership in.</summary>
    public bool Enabled => _store is not null;

    /// <summary>Fills in the addresses the config left out once the listeners are bound.</summary>
    public void SetBoundAddresses(Uri http, string? rtsp) =>
        Me = Me with { PublicUrl = Me.PublicUrl ?? http.GetLeftPart(UriPartial.Authority), PublicRtsp = Me.PublicRtsp ?? rtsp };

    /// <summary>The device's uplink is live here now.</summary>
    public void Claim(string device)
    {
        if (_store is null) return;
        _held[device] = 0;
        Try(() => _store.Claim(device, Me, _time.GetUtcNow() + Lease), device);
    }

    /// <summary>The device's uplink here ended.</summary>
    public void Release(string device)
    {
        if (_store is null) return;
        _held.TryRemove(device, out _);
        Try(() => _store.Release(device, Me.Id), device);
    }

    /// <summary>Another relay whose lease on <paramref name="device"/> is current, or null (this relay, nobody, or no shared database).</summary>
    public DeviceOwner? OwnerElsewhere(string device)
    {
        if (_store is null || _held.ContainsKey(device)) return null;
        DeviceOwner? owner = null;
        Try(() => owner = _store.GetOwner(device, _time.GetUtcNow()), device);
        return owner is not null && owner.RelayId != Me.Id ? owner : null;
    }

    /// <summary>
    /// Every device whose uplink another relay holds now (a current lease in the shared database), by device id:
    /// what lets the device list on any relay show every device's live state. Empty without a shared database,
    /// and when the database cannot be asked (logged): the list then shows what this relay knows.
    /// </summary>
    public IReadOnlyDictionary<string, DeviceOwner> OwnersElsewhere()
    {
        if (_store is null) return new Dictionary<string, DeviceOwner>();
        IReadOnlyList<DeviceOwner> owners = [];
        Try(() => owners = _store.ListOwners(_time.GetUtcNow()), "*");
        return owners.Where(o => o.RelayId != Me.Id && !_held.ContainsKey(o.Device)).ToDictionary(o => o.Device, StringComparer.Ordinal);
    }

    /// <summary><c>rtsp://HOST:PORT</c> of the relay holding <paramref name="device"/> when that is another relay, else null.</summary>
    public string? RtspBaseElsewhere(string device) => OwnerElsewhere(device)?.PublicRtsp is { } rtsp ? "rtsp://" + rtsp : null;

    /// <summary>The public base URL of the relay holding <paramref name="device"/> when that is another relay, else null.</summary>
    public string? HttpBaseElsewhere(string device) => OwnerElsewhere(device)?.PublicUrl;

    /// <inheritdoc />
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_store is null) return;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await Task.Delay(RenewInterval, _time, stoppingToken).ConfigureAwait(false);
                var held = _held.Keys.ToArray();
                var leaseUntil = _time.GetUtcNow() + Lease;
                Try(() =>
                {
                    var renewed = _store.Renew(Me.Id, held, leaseUntil);
                    // A device whose row another relay took (it reconnected there) or that a lapse dropped: claim it
                    // back only when it is still live here, which _held says.
                    if (renewed < held.Length)
                        foreach (var device in held)
                            if (_held.ContainsKey(device) && _store.GetOwner(device, _time.GetUtcNow()) is null)
                                _store.Claim(device, Me, leaseUntil);
                }, "*");
            }
        }
        catch (OperationCanceledException)
        {
            // Stopping.
        }
    }

    /// <inheritdoc />
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken).ConfigureAwait(false);
        // A graceful stop hands the devices over at once instead of after the lease.
        if (_store is not null)
            foreach (var device in _held.Keys) Try(() => _store.Release(device, Me.Id), device);
    }

    private void Try(Action action, string device)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is DbException or InvalidOperationException or ObjectDisposedException or TimeoutException)
        {
            LogFailed(_logger, device, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "device ownership for {Device}: database trouble: {Reason}")]
    private static partial void LogFailed(ILogger logger, string device, string reason);
}
