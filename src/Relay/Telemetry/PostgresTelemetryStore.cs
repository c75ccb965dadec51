using System.Data.Common;
using Npgsql;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// The telemetry history in PostgreSQL (relay.json <c>"database": "postgres://…"</c>): the same tables
/// and SQL as SQLite, pooled connections (Npgsql), so queries and the ingest run side by side.
/// The schema is created on open when missing.
/// </summary>
public sealed class PostgresTelemetryStore : SqlTelemetryStore
{
    private readonly NpgsqlDataSource _source;

    /// <summary>Connects (throws <see cref="NpgsqlException"/> with the server's reason when it cannot) and creates the tables when missing.</summary>
    public PostgresTelemetryStore(DatabaseUrl url, TelemetryRetention retention) : base(retention)
    {
        ArgumentNullException.ThrowIfNull(url);
        _source = NpgsqlDataSource.Create(url.ToNpgsqlConnectionString());
        using var db = _source.OpenConnection();
        using var cmd = db.CreateCommand();
        // Two relays starting at once must not race on CREATE … IF NOT EXISTS.
        cmd.CommandText = "SELECT pg_advisory_lock(7346001); " + Schema + " SELECT pg_advisory_unlock(7346001);";
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    protected override string Least => "LEAST";

    /// <inheritdoc />
    protected override string Greatest => "GREATEST";

    /// <inheritdoc />
    protected override T Write<T>(Func<DbConnection, T> action)
    {
        using var db = _source.OpenConnection();
        return action(db);
    }

    /// <inheritdoc />
    protected override T Read<T>(Func<DbConnection, T> action)
    {
        using var db = _source.OpenConnection();
        return action(db);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _source.Dispose();
    }
}
