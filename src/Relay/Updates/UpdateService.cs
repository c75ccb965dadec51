using System.Collections.Concurrent;
using System.Threading.Channels;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Uplink;
using Pinhole.Transport.Updates;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Updates;

/// <summary>
/// Rollouts on the relay (docs/updates.md). Once a second, and when a device connects, it offers the
/// active rollout's release to each staged target that is online, confirmed the update capability,
/// does not run that version yet and has not failed it; it serves the bundle's bytes as the device asks
/// for them (from any offset, so a download resumes); it records what each device reports; and it halts
/// the rollout when more than its failure share of the offered devices rolled back or refused.
/// </summary>
public sealed partial class UpdateService
{
    private readonly UpdateStore _store;
    private readonly ReleaseStore _releases;
    private readonly DeviceRegistry _devices;
    private readonly UplinkSessionRegistry _sessions;
    private readonly TimeProvider _time;
    private readonly ILogger<UpdateService> _logger;
    private readonly ConcurrentDictionary<RelayUplinkSession, Serving> _serving = new();

    /// <summary>Creates the service.</summary>
    public UpdateService(UpdateStore store, ReleaseStore releases, DeviceRegistry devices, UplinkSessionRegistry sessions, TimeProvider time, ILogger<UpdateService> logger)
    {
        _store = store;
        _releases = releases;
        _devices = devices;
        _sessions = sessions;
        _time = time;
        _logger = logger;
    }

    /// <summary>The rollout and device-state store.</summary>
    public UpdateStore Store => _store;

    /// <summary>The release bundles.</summary>
    public ReleaseStore Releases => _releases;

    /// <summary>Bundle bytes sent to devices since start (for tests and benchmarks: a resumed download sends only what is missing).</summary>
    public long BytesServed => Interlocked.Read(ref _bytesServed);

    private long _bytesServed;

    /// <summary>A staged device's state when the rollout's version is stored, but not for its architecture.</summary>
    public const string NoBundle = "no-bundle";

    private sealed class Serving(RelayUplinkSession session)
    {
        public RelayUplinkSession Session { get; } = session;
        public Channel<UpdateRequest> Requests { get; } = Channel.CreateBounded<UpdateRequest>(new BoundedChannelOptions(64) { FullMode = BoundedChannelFullMode.DropOldest });
        /// <summary>What the device says it runs on (from its agent string), or null for an edge that does not say.</summary>
        public string? Architecture { get; } = Fleet.FleetApi.AgentArchitecture(session.Agent);
        public string? Offered;
        public string? OfferedArchitecture;
        public Task Task = Task.CompletedTask;
    }

    /// <summary>A device connected: it gets the active rollout's offer if it is a target.</summary>
    public Task OnConnectedAsync(RelayUplinkSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        if ((session.Capabilities & UplinkCapabilities.Updates) == 0) return Task.CompletedTask;
        var serving = new Serving(session);
        _serving[session] = serving;
        serving.Task = Task.Run(() => ServeAsync(serving));
        return CheckDeviceAsync(serving, _store.Latest());
    }

    /// <summary>The session ended.</summary>
    public void OnEnded(RelayUplinkSession session)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (_serving.TryRemove(session, out var serving)) serving.Requests.Writer.TryComplete();
    }

    /// <summary>An update message from a device (request or report). Runs on the receive loop: hands work off.</summary>
    public void OnMessage(RelayUplinkSession session, UplinkMessage message)
    {
        ArgumentNullException.ThrowIfNull(session);
        switch (message)
        {
            case UpdateRequest request:
                if (_serving.TryGetValue(session, out var serving)) serving.Requests.Writer.TryWrite(request);
                break;
            case UpdateReport report:
                OnReport(session.DeviceId, report);
                break;
        }
    }

    private void OnReport(string device, UpdateReport report)
    {
        var now = _time.GetUtcNow();
        switch (report.State)
        {
            case UpdateState.Running:
                _store.SetRunning(device, report.Version, now);
                // Running the version we were rolling out means it committed (perhaps while we did not hear it).
                if (_store.Get(device) is { Version: { } v, State: not "committed" } d && v == report.Version && d.State is not null)
                    _store.SetState(device, v, "committed", 100, "", now);
                break;
            case UpdateState.Committed:
                _store.SetRunning(device, report.Version, now);
                _store.SetState(device, report.Version, "committed", 100, "", now);
                break;
            default:
                var state = report.State switch
                {
                    UpdateState.Downloading => "downloading",
                    UpdateState.Installing => "installing",
                    UpdateState.Trial => "trial",
                    UpdateState.RolledBack => "rolled-back",
                    UpdateState.Refused => "refused",
                    _ => "unknown",
                };
                if (report.State == UpdateState.Trial) _store.SetRunning(device, report.Version, now);
                _store.SetState(device, report.Version, state, report.Percent, report.Detail, now);
                break;
        }
        if (report.State is UpdateState.RolledBack or UpdateState.Refused) LogFailed(_logger, device, report.Version, report.State.ToString(), report.Detail);
        else if (report.State is UpdateState.Committed or UpdateState.Trial) LogState(_logger, device, report.Version, report.State.ToString());
    }

    private async Task ServeAsync(Serving serving)
    {
        var buffer = new byte[UplinkProtocol.MaxUpdateChunkBytes];
        try
        {
            await foreach (var request in serving.Requests.Reader.ReadAllAsync())
            {
                // The bundle that was offered (by version and architecture), else the one an offer would name now.
                StoredRelease? release;
                try
                {
                    release = serving.Offered == request.Version && serving.OfferedArchitecture is { } arch
                        ? _releases.Get(request.Version, arch)
                        : _releases.Choose(request.Version, serving.Architecture, out _);
                }
                catch (Exception e) when (e is ReleaseBundleException or IOException)
                {
                    // Damaged on disk since the offer (the device's hash check would refuse it anyway), or the shared
                    // database could not be asked: the device asks again.
                    release = null;
                }
                if (release is null) continue;
                var offset = request.Offset;
                var left = (long)Math.Min(request.Length, (ulong)Math.Max(0, release.Size - (long)Math.Min(offset, (ulong)release.Size)));
                await using var file = new FileStream(release.Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.Asynchronous);
                do
                {
                    var n = (int)Math.Min(left, 64 * 1024);
                    file.Position = (long)offset;
                    var read = n == 0 ? 0 : await file.ReadAtLeastAsync(buffer.AsMemory(0, n), n, throwOnEndOfStream: false);
                    await serving.Session.SendAsync(new UpdateChunk(request.Version, offset, buffer.AsMemory(0, read).ToArray()), CancellationToken.None);
                    Interlocked.Add(ref _bytesServed, read);
                    offset += (ulong)read;
                    left -= read;
                    if (read == 0) break;
                }
                while (left > 0);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or System.Net.WebSockets.WebSocketException or IOException or ObjectDisposedException or InvalidOperationException)
        {
            // The session ended; the device resumes from its last byte on the next one.
        }
    }

    /// <summary>Once a second: offers, halts, completes. Also picks up rollouts started by the CLI.</summary>
    public Task WatchAsync(TimeSpan interval, CancellationToken cancellationToken) =>
        Fleet.PeriodicCheck.RunAsync(interval, _time, CheckOnceAsync,
            e => e is Microsoft.Data.Sqlite.SqliteException or InvalidOperationException or IOException or ReleaseBundleException,
            e => LogWatchFailed(_logger, e.Message), cancellationToken);

    /// <summary>The devices a rollout covers now: its targets (sorted), the first <c>percent</c> of them.</summary>
    public IReadOnlyList<string> Staged(Rollout rollout)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        var targets = (rollout.Devices ?? [.. _devices.Describe().Where(d => d.Revoked is null).Select(d => d.Id)]).Distinct().Order(StringComparer.Ordinal).ToList();
        var count = (int)Math.Ceiling(targets.Count * rollout.Percent / 100.0);
        return targets.Take(count).ToList();
    }

    internal async Task CheckOnceAsync()
    {
        var rollout = _store.Latest();
        if (rollout is null || rollout.State != "active") return;
        var staged = Staged(rollout);
        var states = _store.All().ToDictionary(d => d.Device, StringComparer.Ordinal);
        // A device with no bundle for its architecture was not offered anything: it neither counts as a failure nor dilutes them.
        var offered = staged.Count(id => states.TryGetValue(id, out var d) && d.Version == rollout.Version && d.State is not null and not NoBundle);
        var failed = staged.Count(id => states.TryGetValue(id, out var d) && d.Version == rollout.Version && d.State is "rolled-back" or "refused");
        if (failed > 0 && failed * 100 > rollout.MaxFailurePercent * Math.Max(1, offered))
        {
            var why = $"{failed} of {offered} devices failed (more than {rollout.MaxFailurePercent}%)";
            _store.SetRolloutState(rollout.Id, "halted", why);
            LogHalted(_logger, rollout.Version, why);
            return;
        }
        if (rollout.Percent == 100 && staged.Count > 0 &&
            staged.All(id => states.TryGetValue(id, out var d) && d.Running == rollout.Version && d.Version == rollout.Version && d.State == "committed"))
        {
            _store.SetRolloutState(rollout.Id, "done", $"{staged.Count} devices run {rollout.Version}");
            return;
        }
        foreach (var serving in _serving.Values.ToList())
            if (staged.Contains(serving.Session.DeviceId)) await CheckDeviceAsync(serving, rollout);
    }

    private async Task CheckDeviceAsync(Serving serving, Rollout? rollout)
    {
        if (rollout is null || rollout.State != "active") return;
        var device = serving.Session.DeviceId;
        if (!Staged(rollout).Contains(device)) return;
        if (serving.Offered == rollout.Version) return; // once per session; a reconnect offers again (and resumes)
        var state = _store.Get(device);
        if (state?.Running == rollout.Version) return;
        if (!rollout.Force && state is { Version: { } v, State: "rolled-back" or "refused" } && v == rollout.Version) return;
        var release = _releases.Choose(rollout.Version, serving.Architecture, out var problem);
        if (release is null)
        {
            if (_releases.ForVersion(rollout.Version).Count == 0)
            {
                _store.SetRolloutState(rollout.Id, "halted", $"release {rollout.Version} is not stored on this relay (pinhole-relay releases add FILE)");
                return;
            }
            // Stored, but not for this device's architecture: say so in its state (once), and offer it when the bundle is added.
            if (state is not { State: NoBundle } || state.Version != rollout.Version || state.Detail != problem)
            {
                _store.SetState(device, rollout.Version, NoBundle, 0, problem!, _time.GetUtcNow());
                LogNoBundle(_logger, device, rollout.Version, problem!);
            }
            return;
        }
        serving.Offered = rollout.Version;
        serving.OfferedArchitecture = release.Manifest.Architecture;
        if (state?.Version != rollout.Version || state.State is null or NoBundle) _store.SetState(device, rollout.Version, "offered", 0, "", _time.GetUtcNow());
        try
        {
            await serving.Session.SendAsync(new UpdateOffer(rollout.Version, release.Manifest.Architecture, (ulong)release.Size, release.Sha256, rollout.Force), CancellationToken.None);
            LogOffered(_logger, device, rollout.Version, release.Manifest.Architecture, release.Size);
        }
        catch (Exception e) when (e is OperationCanceledException or System.Net.WebSockets.WebSocketException or IOException or ObjectDisposedException)
        {
            serving.Offered = null;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Updates: offered {Version} for {Architecture} ({Size} bytes) to {Device}")]
    private static partial void LogOffered(ILogger logger, string device, string version, string architecture, long size);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Updates: {Device} is not offered {Version}: {Problem}")]
    private static partial void LogNoBundle(ILogger logger, string device, string version, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "Updates: {Device} reports {Version} {State}")]
    private static partial void LogState(ILogger logger, string device, string version, string state);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Updates: {Device} reports {Version} {State}: {Detail}")]
    private static partial void LogFailed(ILogger logger, string device, string version, string state, string detail);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Updates: rollout of {Version} halted: {Why}")]
    private static partial void LogHalted(ILogger logger, string version, string why);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Updates: checking rollouts failed: {Reason}")]
    private static partial void LogWatchFailed(ILogger logger, string reason);
}
