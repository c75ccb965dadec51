using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Uplink;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Fleet;

/// <summary>Who made a change and from where, for the audit log.</summary>
/// <param name="Actor"><c>user:NAME</c>, <c>token:NAME</c> or <c>cli:USER</c>.</param>
/// <param name="Source">The client address, or <c>local</c> for the CLI.</param>
public sealed record ChangeOrigin(string Actor, string Source);

/// <summary>The result of storing a desired configuration: its revision, or the problems that refused it.</summary>
public sealed record ConfigPutResult(long Revision, IReadOnlyList<ConfigProblem> Problems)
{
    /// <summary>True when stored.</summary>
    public bool Stored => Problems.Count == 0;
}

/// <summary>
/// The fleet on the relay: device registry changes (audited, and dropping an uplink whose token
/// changed at once), desired configuration (validated, stored as a new revision, pushed whole to the
/// device on every connect and every change), what devices report back, and their live state.
/// Changes made by another process on the same database (the CLI) are picked up by <see cref="WatchAsync"/>.
/// </summary>
public sealed partial class FleetService : IUplinkSessionObserver
{
    private readonly IFleetStore _store;
    private readonly DeviceRegistry _devices;
    private readonly UplinkSessionRegistry _sessions;
    private readonly TimeProvider _time;
    private readonly ILogger<FleetService> _logger;
    private readonly ConcurrentDictionary<string, LiveState> _live = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _pushed = new(StringComparer.Ordinal);
    private IReadOnlyDictionary<string, long> _stamps;
    private readonly Updates.UpdateService? _updates;
    private readonly DeviceOwnershipService? _ownership;

    /// <summary>Creates the service.</summary>
    public FleetService(IFleetStore store, DeviceRegistry devices, UplinkSessionRegistry sessions, TimeProvider time, ILogger<FleetService> logger,
        Updates.UpdateService? updates = null, DeviceOwnershipService? ownership = null)
    {
        _updates = updates;
        _ownership = ownership;
        _store = store;
        _devices = devices;
        _sessions = sessions;
        _time = time;
        _logger = logger;
        _stamps = devices.CredentialStamps();
    }

    /// <summary>The store (read side of the API).</summary>
    public IFleetStore Store => _store;

    /// <summary>Remote updates, when the relay serves them.</summary>
    public Updates.UpdateService? Updates => _updates;

    /// <summary>The device registry.</summary>
    public DeviceRegistry Devices => _devices;

    /// <summary>Live state of a connected device: the session and the latest status it reported.</summary>
    public sealed class LiveState(RelayUplinkSession session)
    {
        /// <summary>The live uplink.</summary>
        public RelayUplinkSession Session { get; } = session;

        /// <summary>The device's latest <see cref="DeviceStatus"/> document, if any.</summary>
        public JsonObject? Status { get; set; }

        /// <summary>When <see cref="Status"/> arrived.</summary>
        public DateTimeOffset? StatusAt { get; set; }
    }

    /// <summary>The live state of a connected device, or null.</summary>
    public LiveState? Live(string deviceId) => _live.TryGetValue(deviceId, out var s) ? s : null;

    // ------------------------------------------------------------------ registry changes

    /// <summary>Adds a device and returns its token (shown once).</summary>
    public string AddDevice(string id, ChangeOrigin origin)
    {
        var token = _devices.Add(id);
        Audit(origin, "device.add", id, "device added with a new token");
        return token;
    }

    /// <summary>Removes a stored device; its live uplink is closed.</summary>
    public async Task<bool> RemoveDeviceAsync(string id, ChangeOrigin origin)
    {
        if (!_devices.Remove(id)) return false;
        Audit(origin, "device.remove", id, "device removed");
        await DropAsync(id, "the device was removed");
        return true;
    }

    /// <summary>Gives a device a new token (returned, shown once); the live uplink that used the old one is closed at once.</summary>
    public async Task<string> RotateTokenAsync(string id, ChangeOrigin origin)
    {
        var token = _devices.RotateToken(id);
        Audit(origin, "device.rotate-token", id, "token rotated; the old token no longer works");
        await DropAsync(id, "the device's token was rotated");
        return token;
    }

    /// <summary>Revokes a device's token; its live uplink is closed at once and cannot reconnect.</summary>
    public async Task RevokeAsync(string id, ChangeOrigin origin)
    {
        _devices.Revoke(id);
        Audit(origin, "device.revoke", id, "token revoked");
        await DropAsync(id, "the device's token was revoked");
    }

    /// <summary>Creates an API token (returned, shown once; only its SHA-256 is stored).</summary>
    public string AddApiToken(string name, ChangeOrigin origin)
    {
        var token = ApiTokens.Create(_store, name, _time.GetUtcNow());
        Audit(origin, "token.add", "token:" + name, "API token created");
        return token;
    }

    private async Task DropAsync(string id, string why)
    {
        _stamps = _devices.CredentialStamps();
        if (!_sessions.TryGet(id, out var session)) return;
        LogDropped(_logger, id, why);
        await session.CloseAsync(UplinkReason.Unauthorized, why, TimeSpan.FromSeconds(1));
    }

    // ------------------------------------------------------------------ desired configuration

    /// <summary>
    /// Validates <paramref name="json"/> with the rules of <c>pinhole-edge check-config</c>, stores it as the
    /// device's next revision and sends it to the device when it is online.
    /// </summary>
    public async Task<ConfigPutResult> PutConfigAsync(string device, string json, ChangeOrigin origin)
    {
        var problems = ManagedConfig.Validate(json, out var document);
        if (problems.Count > 0) return new ConfigPutResult(0, problems);
        // Stored normalized (no comments, one line): that is what the device receives and what GET returns.
        var normalized = document!.ToJsonString();
        var revision = _store.AddConfigRevision(device, normalized, origin.Actor, _time.GetUtcNow());
        Audit(origin, "config.set", device, $"revision {revision} ({normalized.Length} bytes)");
        await PushAsync(device, revision, normalized);
        return new ConfigPutResult(revision, []);
    }

    private async Task PushAsync(string device, long revision, string document)
    {
        _pushed[device] = revision;
        if (!_sessions.TryGet(device, out var session) || (session.Capabilities & UplinkCapabilities.Data) == 0) return;
        try
        {
            await session.SendAsync(new ConfigPush((ulong)revision, document), CancellationToken.None);
            LogPushed(_logger, device, revision);
        }
        catch (Exception e) when (e is OperationCanceledException or System.Net.WebSockets.WebSocketException or IOException or ObjectDisposedException)
        {
            // The session is ending; the next connect resyncs.
            LogPushFailed(_logger, device, revision, e.Message);
        }
    }

    // ------------------------------------------------------------------ uplink sessions

    /// <inheritdoc />
    public async Task OnConnectedAsync(RelayUplinkSession session, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(session);
        _live[session.DeviceId] = new LiveState(session);
        // First, so the other relays redirect viewers here as soon as possible.
        _ownership?.Claim(session.DeviceId);
        _store.SetSeen(session.DeviceId, _time.GetUtcNow(), session.RemoteAddress, session.Agent);
        // Full resync on every connect: the latest desired revision, whatever the device had before.
        if ((session.Capabilities & UplinkCapabilities.Data) != 0 && _store.GetLatestConfig(session.DeviceId) is { } latest)
        {
            _pushed[session.DeviceId] = latest.Revision;
            await session.SendAsync(new ConfigPush((ulong)latest.Revision, latest.Document), cancellationToken);
            LogPushed(_logger, session.DeviceId, latest.Revision);
        }
        if (_updates is not null) await _updates.OnConnectedAsync(session);
    }

    /// <inheritdoc />
    public ValueTask OnDataAsync(RelayUplinkSession session, UplinkMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(session);
        switch (message)
        {
            case UpdateRequest or UpdateReport:
                _updates?.OnMessage(session, message);
                break;
            case ConfigReport report:
                var outcome = report.Outcome switch
                {
                    ConfigOutcome.Applied => "applied",
                    ConfigOutcome.Rejected => "rejected",
                    ConfigOutcome.Reverted => "reverted",
                    _ => "unknown",
                };
                if (report.Revision > long.MaxValue) break;
                _store.SetReported(session.DeviceId, (long)report.Revision, outcome, report.Detail, _time.GetUtcNow());
                LogReported(_logger, session.DeviceId, (long)report.Revision, outcome, report.Detail);
                break;
            case DeviceStatus status:
                JsonObject? parsed = null;
                try
                {
                    parsed = JsonNode.Parse(status.Document, documentOptions: new JsonDocumentOptions { MaxDepth = 8 }) as JsonObject;
                }
                catch (JsonException)
                {
                }
                if (parsed is null)
                {
                    LogBadStatus(_logger, session.DeviceId);
                    break;
                }
                if (_live.TryGetValue(session.DeviceId, out var live) && live.Session == session)
                {
                    live.Status = parsed;
                    live.StatusAt = _time.GetUtcNow();
                    // Kept in the store too, so that `devices list` (another process) and the API show it after the device left.
                    if (parsed["linkBytesPerSecond"] is JsonValue rate && rate.TryGetValue<long>(out var bytesPerSecond) && bytesPerSecond >= 0)
                        _store.SetLinkRate(session.DeviceId, bytesPerSecond, live.StatusAt.Value);
                }
                break;
        }
        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public void OnEnded(RelayUplinkSession session, bool wasLive)
    {
        ArgumentNullException.ThrowIfNull(session);
        _updates?.OnEnded(session);
        if (!wasLive) return;
        if (_live.TryGetValue(session.DeviceId, out var live) && live.Session == session)
            _live.TryRemove(new KeyValuePair<string, LiveState>(session.DeviceId, live));
        _ownership?.Release(session.DeviceId);
        try
        {
            _store.SetSeen(session.DeviceId, _time.GetUtcNow(), null, null);
        }
        catch (Exception e) when (e is System.Data.Common.DbException or ObjectDisposedException or InvalidOperationException)
        {
            // The relay is stopping and the store closed first; last-seen is best effort.
        }
    }

    // ------------------------------------------------------------------ changes from other processes

    /// <summary>
    /// Once a second: closes uplinks whose device token was rotated, revoked or removed, and pushes
    /// revisions stored by another process (<c>pinhole-relay config set</c> while the relay runs).
    /// </summary>
    public Task WatchAsync(TimeSpan interval, CancellationToken cancellationToken) =>
        PeriodicCheck.RunAsync(interval, _time, CheckOnceAsync,
            e => e is System.Data.Common.DbException or InvalidOperationException or IOException,
            e => LogWatchFailed(_logger, e.Message), cancellationToken);

    internal async Task CheckOnceAsync()
    {
        var stamps = _devices.CredentialStamps();
        var before = _stamps;
        _stamps = stamps;
        foreach (var id in before.Keys.Union(stamps.Keys))
        {
            var had = before.TryGetValue(id, out var a);
            var has = stamps.TryGetValue(id, out var b);
            if (had == has && a == b) continue;
            if (_sessions.TryGet(id, out var session))
            {
                LogDropped(_logger, id, "its token changed");
                await session.CloseAsync(UplinkReason.Unauthorized, "the device's token was rotated or revoked", TimeSpan.FromSeconds(1));
            }
        }
        var revisions = _store.LatestRevisions();
        foreach (var (device, revision) in revisions)
        {
            if (_pushed.TryGetValue(device, out var pushed) && pushed >= revision) continue;
            if (_store.GetLatestConfig(device) is { } latest) await PushAsync(device, latest.Revision, latest.Document);
        }
    }

    private void Audit(ChangeOrigin origin, string action, string target, string detail) =>
        _store.Audit(new AuditEntry(_time.GetUtcNow(), origin.Actor, origin.Source, action, target, detail));

    [LoggerMessage(Level = LogLevel.Information, Message = "Fleet: uplink of {Device} closed: {Why}")]
    private static partial void LogDropped(ILogger logger, string device, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "Fleet: configuration revision {Revision} sent to {Device}")]
    private static partial void LogPushed(ILogger logger, string device, long revision);

    [LoggerMessage(Level = LogLevel.Information, Message = "Fleet: could not send revision {Revision} to {Device} ({Reason}); it is sent again when the device reconnects")]
    private static partial void LogPushFailed(ILogger logger, string device, long revision, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Fleet: {Device} reports revision {Revision} {Outcome} {Detail}")]
    private static partial void LogReported(ILogger logger, string device, long revision, string outcome, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fleet: {Device} sent a status that is not a JSON object; ignored")]
    private static partial void LogBadStatus(ILogger logger, string device);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fleet: checking the store for changes failed: {Reason}")]
    private static partial void LogWatchFailed(ILogger logger, string reason);
}
