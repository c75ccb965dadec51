namespace Pinhole.EdgeHost.Telemetry.Outbox;

/// <summary>A reading that is durably on disk and waits for the broker's acknowledgement.</summary>
/// <param name="Index">Position in the outbox, unique and increasing across restarts.</param>
/// <param name="Sensor">Sensor name (the last topic level).</param>
/// <param name="Sequence">Per-sensor sequence number: 1, 2, 3, … across restarts.</param>
/// <param name="Value">The value.</param>
/// <param name="Unit">Its unit, possibly empty.</param>
/// <param name="Timestamp">When it was measured (UTC).</param>
public sealed record OutboxRecord(long Index, string Sensor, long Sequence, double Value, string Unit, DateTimeOffset Timestamp)
{
    // Set once the broker acknowledged it; guarded by the outbox lock.
    internal bool Acknowledged { get; set; }
}

/// <summary>Limits of the outbox.</summary>
public sealed record OutboxOptions
{
    /// <summary>Most bytes of segment files kept on disk; beyond it the oldest segment is dropped (and counted) even if unacknowledged.</summary>
    public long MaxBytes { get; init; } = 32L * 1024 * 1024;

    /// <summary>A segment file is closed and a new one begun past this size; at most a quarter of <see cref="MaxBytes"/> is used.</summary>
    public long SegmentBytes { get; init; } = 1024 * 1024;

    /// <summary>How often the acknowledged-through cursor is written; losing its last update only causes duplicates.</summary>
    public TimeSpan CursorSaveInterval { get; init; } = TimeSpan.FromMilliseconds(200);

    internal long EffectiveSegmentBytes => Math.Max(4096, Math.Min(SegmentBytes, MaxBytes / 4));
}
