using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Supervision;
using Pinhole.EdgeHost.Uplink;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Fleet;

/// <summary>What the device made of the latest desired configuration, as persisted and shown on the page.</summary>
/// <param name="Revision">The relay's revision number (0: never managed).</param>
/// <param name="Outcome"><c>applied</c>, <c>rejected</c>, <c>reverted</c>, or <c>guarding</c> while a changed relay list waits for its first connection.</param>
/// <param name="Detail">Why it was rejected or reverted (one problem per line).</param>
/// <param name="At">When the outcome was decided.</param>
public sealed record ManagedState(long Revision, string Outcome, string Detail, DateTimeOffset At)
{
    /// <summary>Sections of edge.json before a guarded revision, to put back if it cannot reach a relay.</summary>
    public JsonObject? Previous { get; init; }

    /// <summary>When a guarded revision is undone unless the uplink connected first.</summary>
    public DateTimeOffset? GuardUntil { get; init; }
}

/// <summary>
/// The device's side of fleet management. It takes the relay's desired configuration from the uplink
/// data channel, validates it (the rules of <c>check-config</c>, plus the device's own: no <c>exec:</c>
/// sources unless <c>fleet.allowExec</c>), saves it into edge.json atomically and applies it through the
/// supervisor (only changed pipelines restart), remembers the outcome per revision in
/// <c>dataDir/fleet-state.json</c> and reports it. A revision is handled once: the relay's resync after
/// every reconnect gets the remembered outcome again. A revision that changes <c>relays</c> is guarded:
/// unless the uplink connects within <c>fleet.connectivityGuard</c> the previous sections are restored
/// (also after a restart in between), and the relay hears "reverted" when the device is back.
/// </summary>
public sealed partial class FleetAgent : IUplinkDataHandler, IAsyncDisposable
{
    private static readonly JsonSerializerOptions StateJson = new() { WriteIndented = true };
    private readonly EdgeConfigStore _store;
    private readonly PipelineSupervisor _supervisor;
    private readonly TimeProvider _time;
    private readonly ILogger<FleetAgent> _logger;
    private readonly string _statePath;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly long _startedAt;
    private volatile Func<UplinkMessage, bool>? _send;
    private ManagedState _state;
    private readonly Lock _statusLock = new();
    private long _sentLinkRate = -1, _statusSentAt;
    private Task _guard = Task.CompletedTask;
    private CancellationTokenSource? _guardCancel;

    /// <summary>Loads the persisted state; a revision still guarding after a restart resumes its guard.</summary>
    public FleetAgent(EdgeConfigStore store, PipelineSupervisor supervisor, TimeProvider time, ILogger<FleetAgent> logger)
    {
        _store = store;
        _supervisor = supervisor;
        _time = time;
        _logger = logger;
        _startedAt = time.GetTimestamp();
        _statePath = Path.Combine(store.Current.DataDir, "fleet-state.json");
        _state = Load(_statePath, logger) ?? new ManagedState(0, "", "", time.GetUtcNow());
        if (_state.Outcome == "guarding") StartGuard();
        // Status goes to the relay when it changes, on the supervisor's own tick: no timer of ours wakes the device.
        _supervisor.Changed += SendStatus;
        _supervisor.Ticked += OnTick;
    }

    /// <summary>
    /// The uplink's measured link rate in bytes per second (0 while unknown), sampled for the status
    /// document; null when there is no uplink client (tests). Set once by the host after construction.
    /// </summary>
    public Func<long>? LinkRate { get; set; }

    /// <summary>
    /// Shortest time between two status documents sent because the link rate moved; the rate goes out
    /// only when it differs from the last one sent by more than <see cref="LinkRateChange"/>.
    /// </summary>
    public TimeSpan LinkRateInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Relative change of the link rate (0.1: 10 %) that makes a new status document worth sending.</summary>
    public double LinkRateChange { get; set; } = 0.1;

    /// <summary>The latest outcome (revision 0 when the relay never sent a configuration).</summary>
    public ManagedState State => Volatile.Read(ref _state);

    /// <summary>Waits until work queued so far (an apply, a revert) is done. For tests.</summary>
    internal async Task IdleAsync()
    {
        await _lock.WaitAsync();
        _lock.Release();
    }

    /// <inheritdoc />
    public void OnConnected(Uri relay, Func<UplinkMessage, bool>? send)
    {
        _send = send;
        _ = RunAsync(async () =>
        {
            // Reaching a relay is what a guarded revision was waiting for.
            if (_state.Outcome == "guarding") Decide(_state with { Outcome = "applied", Detail = "", At = _time.GetUtcNow(), Previous = null, GuardUntil = null });
            if (_state.Revision > 0) Report();
        });
        SendStatus();
    }

    /// <inheritdoc />
    public void OnDisconnected() => _send = null;

    /// <inheritdoc />
    public void OnMessage(UplinkMessage message)
    {
        if (message is ConfigPush push) _ = RunAsync(() => ApplyAsync(push));
    }

    private async Task RunAsync(Func<Task> work)
    {
        try
        {
            await _lock.WaitAsync(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        try
        {
            await work();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug here must not take the uplink down with it; the next push retries.
            LogFailed(_logger, e);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async Task ApplyAsync(ConfigPush push)
    {
        var revision = (long)Math.Min(push.Revision, long.MaxValue);
        if (revision == _state.Revision && _state.Outcome is "applied" or "rejected" or "reverted" or "guarding")
        {
            LogResync(_logger, revision, _state.Outcome);
            if (_state.Outcome != "guarding") Report();
            return;
        }

        var problems = ManagedConfig.Validate(push.Document, out var document).Select(p => p.ToString()).ToList();
        if (document is not null) problems.AddRange(DeviceRules(document));
        if (problems.Count > 0)
        {
            Decide(new ManagedState(revision, "rejected", string.Join('\n', problems), _time.GetUtcNow()));
            Report();
            return;
        }

        var sections = ManagedConfig.ToSections(document!);
        var previous = _store.ReadManagedSections();
        var relaysChange = sections["relays"] is { } relays && !JsonNode.DeepEquals(relays, previous["relays"]);
        var saved = await _store.SaveSectionsAsync(sections);
        if (!saved.Saved)
        {
            Decide(new ManagedState(revision, "rejected", string.Join('\n', saved.Problems.Select(p => p.ToString())), _time.GetUtcNow()));
            Report();
            return;
        }
        LogApplied(_logger, revision, saved.Applied is { } a ? string.Join(", ", a.Started.Concat(a.Restarted).Concat(a.Stopped)) : "");
        if (relaysChange)
        {
            var guard = Duration.ParseOrDefault(_store.Current.Fleet.ConnectivityGuard, TimeSpan.FromSeconds(90));
            Decide(new ManagedState(revision, "guarding", "", _time.GetUtcNow()) { Previous = previous, GuardUntil = _time.GetUtcNow() + guard });
            StartGuard();
            return; // reported as applied once the uplink connects with the new list
        }
        Decide(new ManagedState(revision, "applied", "", _time.GetUtcNow()));
        Report();
    }

    /// <summary>Rules only the device can apply: what it allows a remote admin to make it run.</summary>
    private IEnumerable<string> DeviceRules(JsonObject document)
    {
        if (_store.Current.Fleet.AllowExec) yield break;
        if (document["cameras"] is not JsonArray cameras) yield break;
        for (var i = 0; i < cameras.Count; i++)
        {
            if (cameras[i]?["source"] is JsonValue v && v.TryGetValue<string>(out var source) && source.StartsWith("exec:", StringComparison.Ordinal))
                yield return $"cameras[{i}].source: this device does not accept exec: sources from the relay (they run commands on it); set \"fleet\": {{ \"allowExec\": true }} in its edge.json to allow them";
        }
    }

    private void StartGuard()
    {
        _guardCancel?.Cancel();
        var cancel = _guardCancel = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var until = _state.GuardUntil ?? _time.GetUtcNow();
        _guard = Task.Run(async () =>
        {
            var wait = until - _time.GetUtcNow();
            try
            {
                if (wait > TimeSpan.Zero) await Task.Delay(wait, _time, cancel.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            await RunAsync(RevertIfStillGuardingAsync);
        });
    }

    private async Task RevertIfStillGuardingAsync()
    {
        if (_state.Outcome != "guarding" || _state.Previous is not { } previous) return;
        var revision = _state.Revision;
        var sections = new JsonObject();
        foreach (var key in ManagedConfig.Keys) sections[key] = previous[key]?.DeepClone();
        var restored = await _store.SaveSectionsAsync(sections);
        var why = $"no relay could be reached within {_store.Current.Fleet.ConnectivityGuard} with the relays of revision {revision}; " +
                  "the previous configuration was restored";
        if (!restored.Saved) why += $" (restoring failed: {string.Join("; ", restored.Problems)})";
        LogReverted(_logger, revision, why);
        Decide(new ManagedState(revision, "reverted", why, _time.GetUtcNow()));
    }

    private void Decide(ManagedState state)
    {
        Volatile.Write(ref _state, state);
        if (state.Outcome != "guarding") _guardCancel?.Cancel();
        try
        {
            var json = JsonSerializer.Serialize(new JsonObject
            {
                ["revision"] = state.Revision,
                ["outcome"] = state.Outcome,
                ["detail"] = state.Detail,
                ["at"] = state.At,
                ["guardUntil"] = state.GuardUntil,
                ["previous"] = state.Previous?.DeepClone(),
            }, StateJson);
            Directory.CreateDirectory(Path.GetDirectoryName(_statePath)!);
            EdgeConfigStore.WriteAtomically(_statePath, json + "\n");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogStateNotSaved(_logger, _statePath, e.Message);
        }
    }

    private static ManagedState? Load(string path, ILogger logger)
    {
        try
        {
            if (!File.Exists(path)) return null;
            if (JsonNode.Parse(File.ReadAllText(path)) is not JsonObject o) return null;
            return new ManagedState(o["revision"]?.GetValue<long>() ?? 0, o["outcome"]?.GetValue<string>() ?? "", o["detail"]?.GetValue<string>() ?? "",
                o["at"]?.GetValue<DateTimeOffset>() ?? DateTimeOffset.UtcNow)
            {
                Previous = o["previous"] as JsonObject is { } p ? (JsonObject)p.DeepClone() : null,
                GuardUntil = o["guardUntil"]?.GetValue<DateTimeOffset?>(),
            };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException or FormatException)
        {
            LogStateNotLoaded(logger, path, e.Message);
            return null;
        }
    }

    private void Report()
    {
        var state = _state;
        var outcome = state.Outcome switch
        {
            "applied" => ConfigOutcome.Applied,
            "rejected" => ConfigOutcome.Rejected,
            "reverted" => ConfigOutcome.Reverted,
            _ => (ConfigOutcome?)null,
        };
        if (outcome is null || state.Revision <= 0) return;
        var detail = state.Detail;
        if (Encoding.UTF8.GetByteCount(detail) > UplinkProtocol.MaxReportBytes) detail = detail[..(UplinkProtocol.MaxReportBytes / 4)] + "…";
        _send?.Invoke(new ConfigReport((ulong)state.Revision, outcome.Value, detail));
    }

    private void SendStatus()
    {
        if (_send is not { } send) return;
        lock (_statusLock)
        {
            var rate = LinkRate?.Invoke();
            var doc = StatusDocument(rate);
            if (Encoding.UTF8.GetByteCount(doc) > UplinkProtocol.MaxReportBytes) return;
            if (!send(new DeviceStatus(doc))) return;
            _sentLinkRate = rate ?? -1;
            _statusSentAt = _time.GetTimestamp();
        }
    }

    // The link rate changes with every ack; the relay hears it on the supervisor's tick when it moved
    // by more than LinkRateChange, at most every LinkRateInterval (a steady link costs nothing).
    private void OnTick()
    {
        if (_send is null || LinkRate is not { } linkRate) return;
        lock (_statusLock)
        {
            if (_statusSentAt != 0 && _time.GetElapsedTime(_statusSentAt) < LinkRateInterval) return;
            if (!LinkRateMoved(_sentLinkRate, linkRate(), LinkRateChange)) return;
        }
        SendStatus();
    }

    /// <summary>Whether <paramref name="now"/> differs from the last rate sent (-1: none) enough to send it again.</summary>
    internal static bool LinkRateMoved(long sent, long now, double change)
    {
        if (sent < 0) return true;
        if (sent == 0 || now == 0) return sent != now;
        return Math.Abs(now - sent) > change * sent;
    }

    // The relay adds the time since it received this to the uptime, so it need not be refreshed.
    private string StatusDocument(long? linkRate)
    {
        var state = _state;
        var o = new JsonObject
        {
            ["revision"] = state.Revision,
            ["outcome"] = state.Outcome,
            ["pipelines"] = new JsonArray([.. _supervisor.Snapshot().Select(p => (JsonNode)new JsonObject
            {
                ["name"] = p.Name,
                ["state"] = p.StateName,
                ["healthy"] = p.Healthy,
                ["status"] = p.Status.Length > 200 ? p.Status[..200] : p.Status,
                ["lastError"] = p.LastError is { Length: > 500 } e ? e[..500] : p.LastError,
            })]),
        };
        o["uptimeSeconds"] = Math.Round(_time.GetElapsedTime(_startedAt).TotalSeconds, 1);
        if (linkRate is { } rate) o["linkBytesPerSecond"] = rate;
        return o.ToJsonString();
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        _supervisor.Changed -= SendStatus;
        _supervisor.Ticked -= OnTick;
        await _stop.CancelAsync();
        await _guard.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Fleet: revision {Revision} applied (pipelines changed: {Changed})")]
    private static partial void LogApplied(ILogger logger, long revision, string changed);

    [LoggerMessage(Level = LogLevel.Debug, Message = "Fleet: revision {Revision} again from the relay; it was {Outcome}")]
    private static partial void LogResync(ILogger logger, long revision, string outcome);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fleet: revision {Revision} reverted: {Why}")]
    private static partial void LogReverted(ILogger logger, long revision, string why);

    [LoggerMessage(Level = LogLevel.Error, Message = "Fleet: handling a configuration failed")]
    private static partial void LogFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Fleet: cannot save {Path}: {Reason}")]
    private static partial void LogStateNotSaved(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Fleet: ignoring unreadable {Path}: {Reason}")]
    private static partial void LogStateNotLoaded(ILogger logger, string path, string reason);
}
