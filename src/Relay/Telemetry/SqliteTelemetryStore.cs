using System.Data.Common;
using Microsoft.Data.Sqlite;

namespace Pinhole.Relay.Telemetry;

/// <summary>
/// The telemetry history in <c>dataDir/telemetry.db</c> (its own file: the ingest's write load never
/// waits on the fleet store's lock). WAL mode with one writer connection and one reader connection, so
/// charts are drawn while readings are stored. <c>synchronous=FULL</c>: a reading is acknowledged to
/// the broker only after its commit is on disk.
/// </summary>
public sealed class SqliteTelemetryStore : SqlTelemetryStore
{
    private readonly SqliteConnection _writer;
    private readonly SqliteConnection _reader;
    private readonly Lock _writeLock = new();
    private readonly Lock _readLock = new();

    /// <summary>Opens (creating when needed) <c>telemetry.db</c> in <paramref name="dataDir"/>.</summary>
    public SqliteTelemetryStore(string dataDir, TelemetryRetention retention) : base(retention)
    {
        Directory.CreateDirectory(dataDir);
        var cs = new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDir, "telemetry.db"),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = 30,
        }.ToString();
        _writer = new SqliteConnection(cs);
        _writer.Open();
        using (var cmd = _writer.CreateCommand())
        {
            cmd.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=30000;" + Schema;
            cmd.ExecuteNonQuery();
        }
        _reader = new SqliteConnection(cs);
        _reader.Open();
        using (var cmd = _reader.CreateCommand())
        {
            cmd.CommandText = "PRAGMA busy_timeout=30000; PRAGMA query_only=1;";
            cmd.ExecuteNonQuery();
        }
    }

    /// <inheritdoc />
    protected override string Least => "min";

    /// <inheritdoc />
    protected override string Greatest => "max";

    /// <inheritdoc />
    protected override T Write<T>(Func<DbConnection, T> action)
    {
        lock (_writeLock) return action(_writer);
    }

    /// <inheritdoc />
    protected override T Read<T>(Func<DbConnection, T> action)
    {
        lock (_readLock) return action(_reader);
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (!disposing) return;
        lock (_readLock) _reader.Dispose();
        lock (_writeLock) _writer.Dispose();
    }
}
