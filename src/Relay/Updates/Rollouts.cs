using System.Text.Json.Nodes;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Fleet;
using Pinhole.Transport.Updates;

namespace Pinhole.Relay.Updates;

/// <summary>Starting a rollout (the CLI and the API share these checks) and showing rollouts and releases as JSON.</summary>
public static class Rollouts
{
    /// <summary>Default share of offered devices that may fail before a rollout halts itself.</summary>
    public const int DefaultMaxFailurePercent = 20;

    /// <summary>Checks and starts a rollout, writing an audit entry. Returns the rollout, or the one-line problem.</summary>
    public static (Rollout? Rollout, string? Problem) Start(UpdateStore store, ReleaseStore releases, DeviceRegistry devices, IFleetStore audit,
        string version, IReadOnlyList<string>? targets, int percent, int maxFailurePercent, bool force, ChangeOrigin origin, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(releases);
        ArgumentNullException.ThrowIfNull(devices);
        ArgumentNullException.ThrowIfNull(audit);
        ArgumentNullException.ThrowIfNull(origin);
        if (!ReleaseVersion.IsValid(version)) return (null, $"\"{version}\" is not a release version");
        var problems = new List<string>();
        var bundles = releases.ForVersion(version, problems);
        if (bundles.Count == 0 && problems.Count > 0) return (null, $"release {version} is damaged: {string.Join("; ", problems)}");
        if (bundles.Count == 0) return (null, $"no release {version} on this relay (pinhole-relay releases add FILE)");
        if (percent is < 1 or > 100) return (null, $"--percent must be 1 to 100 (got {percent})");
        if (maxFailurePercent is < 0 or > 100) return (null, $"--max-failures must be 0 to 100 (got {maxFailurePercent})");
        if (targets is not null)
        {
            if (targets.Count == 0) return (null, "name at least one device (--devices a,b) or use --all");
            var unknown = targets.Where(t => !devices.Exists(t)).ToList();
            if (unknown.Count > 0) return (null, $"unknown device{(unknown.Count > 1 ? "s" : "")}: {string.Join(", ", unknown)}");
        }
        var rollout = store.Start(version, targets, percent, maxFailurePercent, force, origin.Actor, now);
        audit.Audit(new AuditEntry(now, origin.Actor, origin.Source, "rollout.start", targets is null ? "all" : string.Join(',', targets),
            $"rollout {rollout.Id}: {version} to {percent}%{(force ? " (forced)" : "")}, halts above {maxFailurePercent}% failures"));
        return (rollout, null);
    }

    /// <summary>A rollout with each staged device's state.</summary>
    public static JsonObject View(Rollout rollout, UpdateService updates)
    {
        ArgumentNullException.ThrowIfNull(rollout);
        ArgumentNullException.ThrowIfNull(updates);
        var states = updates.Store.All().ToDictionary(d => d.Device, StringComparer.Ordinal);
        var devices = new JsonArray();
        foreach (var id in updates.Staged(rollout))
        {
            states.TryGetValue(id, out var d);
            devices.Add(DeviceView(id, d, rollout.Version));
        }
        return new JsonObject
        {
            ["id"] = rollout.Id,
            ["version"] = rollout.Version,
            ["devices"] = rollout.Devices is null ? "all" : new JsonArray([.. rollout.Devices.Select(x => (JsonNode)x)]),
            ["percent"] = rollout.Percent,
            ["maxFailurePercent"] = rollout.MaxFailurePercent,
            ["force"] = rollout.Force,
            ["state"] = rollout.State,
            ["detail"] = rollout.Detail,
            ["created"] = rollout.Created,
            ["author"] = rollout.Author,
            ["staged"] = devices,
        };
    }

    /// <summary>One device's update state (for the device view and rollouts).</summary>
    public static JsonObject DeviceView(string id, DeviceUpdate? d, string? version = null) => new()
    {
        ["device"] = id,
        ["running"] = d?.Running,
        ["version"] = d?.Version ?? version,
        ["state"] = d is not null && (version is null || d.Version == version) ? d.State : (d?.Running == version && version is not null ? "committed" : "pending"),
        ["percent"] = d is not null && (version is null || d.Version == version) ? d.Percent : 0,
        ["detail"] = d is not null && (version is null || d.Version == version) ? d.Detail : "",
        ["updated"] = d?.Updated,
    };

    /// <summary>A stored release.</summary>
    public static JsonObject ReleaseView(StoredRelease r)
    {
        ArgumentNullException.ThrowIfNull(r);
        return new JsonObject
        {
            ["version"] = r.Manifest.Version,
            ["architecture"] = r.Manifest.Architecture,
            ["created"] = r.Manifest.Created,
            ["size"] = r.Size,
            ["sha256"] = Convert.ToHexStringLower(r.Sha256),
            ["files"] = r.Manifest.Files.Count,
        };
    }
}
