using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;
using NpgsqlTypes;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Telemetry;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// <c>pinhole-relay db migrate --from sqlite</c>: copies one relay's SQLite data (<c>dataDir/relay.db</c>
/// and, when present, <c>dataDir/telemetry.db</c>) into the PostgreSQL database relay.json names, in one
/// transaction. It refuses a target that already holds fleet or telemetry rows, so running it twice (or
/// against a database other relays already use) cannot mix or duplicate data; a failure half-way
/// leaves the target as it was (the schema aside, which every relay creates anyway).
/// </summary>
public static class SqliteToPostgres
{
    private enum Kind { Text, Bytes, Int32, Int64, Double, Time }

    private sealed record Column(string Source, string Target, Kind Kind);

    private sealed record Table(string File, string Source, string Target, Column[] Columns);

    private static Column C(string name, Kind kind) => new(name, name, kind);

    private static Column C(string source, string target, Kind kind) => new(source, target, kind);

    // The fleet tables differ between the two stores only in the names of time columns (SQLite keeps
    // ISO-8601 text in *_utc, PostgreSQL TIMESTAMPTZ); the telemetry tables are the same on both sides.
    private static readonly Table[] Tables =
    [
        new("relay.db", "devices", "devices", [C("id", Kind.Text), C("salt", Kind.Bytes), C("token_hash", Kind.Bytes),
            C("created_utc", "created", Kind.Time), C("revoked_utc", "revoked", Kind.Time), C("generation", Kind.Int64)]),
        new("relay.db", "api_tokens", "api_tokens", [C("name", Kind.Text), C("token_hash", Kind.Bytes), C("created_utc", "created", Kind.Time)]),
        new("relay.db", "config_revisions", "config_revisions", [C("device", Kind.Text), C("revision", Kind.Int64), C("document", Kind.Text),
            C("author", Kind.Text), C("created_utc", "created", Kind.Time), C("outcome", Kind.Text), C("detail", Kind.Text), C("reported_utc", "reported", Kind.Time)]),
        new("relay.db", "device_state", "device_state", [C("device", Kind.Text), C("last_seen_utc", "last_seen", Kind.Time), C("remote", Kind.Text),
            C("agent", Kind.Text), C("reported_revision", Kind.Int64), C("reported_outcome", Kind.Text), C("reported_detail", Kind.Text),
            C("reported_utc", "reported", Kind.Time), C("link_rate", Kind.Int64), C("link_rate_utc", "link_rate_at", Kind.Time)]),
        new("relay.db", "audit", "audit", [C("id", Kind.Int64), C("at_utc", "at", Kind.Time), C("actor", Kind.Text), C("source", Kind.Text),
            C("action", Kind.Text), C("target", Kind.Text), C("detail", Kind.Text)]),
        // Rollouts and update states exist once the relay has run (Updates/UpdateStore.cs); the same names on both sides.
        new("relay.db", "rollouts", "rollouts", [C("id", Kind.Int64), C("version", Kind.Text), C("devices", Kind.Text), C("percent", Kind.Int32),
            C("max_failure_percent", Kind.Int32), C("force", Kind.Int32), C("state", Kind.Text), C("detail", Kind.Text),
            C("created_utc", Kind.Time), C("author", Kind.Text)]),
        new("relay.db", "device_updates", "device_updates", [C("device", Kind.Text), C("running", Kind.Text), C("version", Kind.Text),
            C("state", Kind.Text), C("percent", Kind.Int32), C("detail", Kind.Text), C("updated_utc", Kind.Time)]),
        new("telemetry.db", "telemetry_readings", "telemetry_readings", [C("device", Kind.Text), C("sensor", Kind.Text), C("seq", Kind.Int64),
            C("ts", Kind.Int64), C("value", Kind.Double)]),
        new("telemetry.db", "telemetry_minute", "telemetry_minute", [C("device", Kind.Text), C("sensor", Kind.Text), C("bucket", Kind.Int64),
            C("vmin", Kind.Double), C("vmax", Kind.Double), C("vsum", Kind.Double), C("n", Kind.Int64)]),
        new("telemetry.db", "telemetry_hour", "telemetry_hour", [C("device", Kind.Text), C("sensor", Kind.Text), C("bucket", Kind.Int64),
            C("vmin", Kind.Double), C("vmax", Kind.Double), C("vsum", Kind.Double), C("n", Kind.Int64)]),
        new("telemetry.db", "telemetry_sensors", "telemetry_sensors", [C("device", Kind.Text), C("sensor", Kind.Text), C("unit", Kind.Text),
            C("value", Kind.Double), C("ts", Kind.Int64), C("seq", Kind.Int64), C("received", Kind.Int64)]),
        new("telemetry.db", "telemetry_status", "telemetry_status", [C("device", Kind.Text), C("status", Kind.Text), C("at", Kind.Int64)]),
    ];

    /// <summary>
    /// Copies every table, writing one line per table (<c>TABLE: N rows</c>) to <paramref name="output"/>.
    /// Returns null on success, else the reason it refused (nothing copied). Database errors throw
    /// (<see cref="NpgsqlException"/>, <see cref="SqliteException"/>) and roll the copy back.
    /// </summary>
    public static string? Run(string dataDir, DatabaseUrl target, TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(dataDir);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(output);
        var relayDb = Path.Combine(dataDir, "relay.db");
        if (!File.Exists(relayDb)) return $"no SQLite fleet store at {relayDb} (is dataDir right?)";
        var files = new List<string> { "relay.db" };
        if (File.Exists(Path.Combine(dataDir, "telemetry.db"))) files.Add("telemetry.db");

        // Bring an older relay.db up to the current columns (what the relay itself does at start), and
        // create the target's schema the way a relay would, migrations and locks included.
        new SqliteFleetStore(dataDir).Dispose();
        new Updates.UpdateStore(dataDir).Dispose();
        new PostgresFleetStore(target).Dispose();
        new PostgresTelemetryStore(target, TelemetryRetention.Default).Dispose();

        using var source = NpgsqlDataSource.Create(target.ToNpgsqlConnectionString());
        using var pg = source.OpenConnection();
        using var tx = pg.BeginTransaction();
        // Serialize with other migrations of the same database, then check it is empty under the lock.
        using (var lockCmd = new NpgsqlCommand($"SELECT pg_advisory_xact_lock({PostgresFleetStore.MigrationLock})", pg, tx)) lockCmd.ExecuteNonQuery();
        var busy = new List<string>();
        foreach (var table in Tables)
        {
            using var count = new NpgsqlCommand($"SELECT EXISTS (SELECT 1 FROM {table.Target})", pg, tx);
            if ((bool)count.ExecuteScalar()!) busy.Add(table.Target);
        }
        if (busy.Count > 0)
            return $"the target database is not empty (rows in {string.Join(", ", busy)}); migrate into a new, empty database";

        foreach (var file in files)
        {
            using var sqlite = new SqliteConnection(new SqliteConnectionStringBuilder
            {
                DataSource = Path.Combine(dataDir, file),
                Mode = SqliteOpenMode.ReadOnly,
                Pooling = false,
                DefaultTimeout = 30,
            }.ToString());
            sqlite.Open();
            // One read transaction per file: a relay still writing to it cannot make the copy inconsistent.
            using var read = sqlite.BeginTransaction(deferred: true);
            foreach (var table in Tables.Where(t => t.File == file))
            {
                var rows = Copy(sqlite, read, table, pg);
                output.WriteLine($"{table.Target}: {rows} rows");
            }
        }
        // Audit and rollout ids were copied as they were: move the sequences past them so new rows follow on.
        foreach (var serial in new[] { "audit", "rollouts" })
            using (var seq = new NpgsqlCommand($"SELECT setval(pg_get_serial_sequence('{serial}', 'id'), COALESCE((SELECT MAX(id) FROM {serial}), 0) + 1, false)", pg, tx))
                seq.ExecuteNonQuery();
        tx.Commit();
        return null;
    }

    private static long Copy(SqliteConnection sqlite, SqliteTransaction read, Table table, NpgsqlConnection pg)
    {
        using var select = sqlite.CreateCommand();
        select.Transaction = read;
        select.CommandText = $"SELECT {string.Join(", ", table.Columns.Select(c => c.Source))} FROM {table.Source}";
        using var reader = select.ExecuteReader();
        // Binary COPY: the telemetry history can be millions of rows; one round trip per row would take hours.
        using var writer = pg.BeginBinaryImport($"COPY {table.Target} ({string.Join(", ", table.Columns.Select(c => c.Target))}) FROM STDIN (FORMAT BINARY)");
        long rows = 0;
        while (reader.Read())
        {
            writer.StartRow();
            for (var i = 0; i < table.Columns.Length; i++)
            {
                if (reader.IsDBNull(i))
                {
                    writer.WriteNull();
                    continue;
                }
                switch (table.Columns[i].Kind)
                {
                    case Kind.Text: writer.Write(reader.GetString(i), NpgsqlDbType.Text); break;
                    case Kind.Bytes: writer.Write((byte[])reader.GetValue(i), NpgsqlDbType.Bytea); break;
                    case Kind.Int32: writer.Write(reader.GetInt32(i), NpgsqlDbType.Integer); break;
                    case Kind.Int64: writer.Write(reader.GetInt64(i), NpgsqlDbType.Bigint); break;
                    case Kind.Double: writer.Write(reader.GetDouble(i), NpgsqlDbType.Double); break;
                    case Kind.Time: writer.Write(Time(reader.GetString(i), table, table.Columns[i]), NpgsqlDbType.TimestampTz); break;
                }
            }
            rows++;
        }
        writer.Complete();
        return rows;
    }

    private static DateTime Time(string text, Table table, Column column) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t.UtcDateTime
            : throw new InvalidOperationException($"{table.Source}.{column.Source}: \"{text}\" is not a time");
}
