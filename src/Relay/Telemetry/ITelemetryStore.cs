namespace Pinhole.Relay.Telemetry;

/// <summary>The latest state of one sensor.</summary>
public sealed record SensorSummary(string Name, double Value, string Unit, DateTimeOffset Timestamp, long Seq, DateTimeOffset LastSeen);

/// <summary>A device's retained status (<c>online</c>/<c>offline</c>) and when the relay saw it.</summary>
public sealed record DeviceTelemetryStatus(string Status, DateTimeOffset At);

/// <summary>Which stored tier answered a history query.</summary>
public enum HistoryTier
{
    /// <summary>Raw readings.</summary>
    Raw,

    /// <summary>1-minute aggregates.</summary>
    Minute,

    /// <summary>1-hour aggregates.</summary>
    Hour,
}

/// <summary>One bucket of a downsampled history (or one reading, with <see cref="Seq"/>, for raw history).</summary>
public sealed record HistoryPoint(DateTimeOffset Time, double Min, double Max, double Avg, long Count, long? Seq = null);

/// <summary>A history answer.</summary>
/// <param name="Tier">The tier read.</param>
/// <param name="Bucket">Width of one point (zero: raw readings, one point each).</param>
/// <param name="Points">Points in time order.</param>
public sealed record HistoryResult(HistoryTier Tier, TimeSpan Bucket, IReadOnlyList<HistoryPoint> Points);

/// <summary>How much each tier keeps.</summary>
public sealed record TelemetryRetention(TimeSpan Raw, TimeSpan Minute, TimeSpan? Hour)
{
    /// <summary>7 days raw, 90 days of 1-minute aggregates, 1-hour aggregates forever.</summary>
    public static TelemetryRetention Default { get; } = new(TimeSpan.FromDays(7), TimeSpan.FromDays(90), null);
}

/// <summary>What a prune removed.</summary>
public sealed record PruneResult(long Raw, long Minute, long Hour);

/// <summary>
/// The telemetry history: raw readings deduplicated by device, sensor and seq, 1-minute and 1-hour
/// aggregates (min/max/avg/count) kept as readings arrive, each tier with its own retention.
/// Implemented for SQLite (default, in dataDir) and PostgreSQL. Thread-safe.
/// </summary>
public interface ITelemetryStore : IDisposable
{
    /// <summary>Stores readings in one transaction; a reading whose (device, sensor, seq) is already stored is skipped. Returns the readings that were new.</summary>
    IReadOnlyList<TelemetryReading> Store(IReadOnlyList<TelemetryReading> readings, DateTimeOffset receivedAt);

    /// <summary>Records a device's status message.</summary>
    void SetStatus(string device, string status, DateTimeOffset at);

    /// <summary>The device's status, or null when none was seen.</summary>
    DeviceTelemetryStatus? GetStatus(string device);

    /// <summary>Latest reading of each of the device's sensors, by name.</summary>
    IReadOnlyList<SensorSummary> Sensors(string device);

    /// <summary>
    /// History of one sensor in [<paramref name="from"/>, <paramref name="to"/>). With <paramref name="points"/>
    /// null: the raw readings (each with its seq), at most <paramref name="maxRaw"/>, null when there are more.
    /// With <paramref name="points"/>: at most that many buckets with min/max/avg/count, from the coarsest tier that
    /// still resolves the bucket width and still holds the range.
    /// </summary>
    HistoryResult? History(string device, string sensor, DateTimeOffset from, DateTimeOffset to, int? points, DateTimeOffset now, int maxRaw = 100_000);

    /// <summary>Deletes what each tier's retention no longer covers.</summary>
    PruneResult Prune(DateTimeOffset now, TelemetryRetention retention);
}
