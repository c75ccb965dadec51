using Microsoft.Data.Sqlite;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// <c>dataDir/relay.db</c>, the one SQLite file the fleet store and the update store share. Each opens its
/// own connection; WAL and a busy timeout let the CLI write while the relay runs.
/// </summary>
internal static class RelayDatabase
{
    /// <summary>Opens (creating when needed) <c>relay.db</c> in <paramref name="dataDir"/>, in WAL mode.</summary>
    public static SqliteConnection Open(string dataDir)
    {
        Directory.CreateDirectory(dataDir);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dataDir, "relay.db"),
            Mode = SqliteOpenMode.ReadWriteCreate,
            Pooling = false,
            DefaultTimeout = 10,
        }.ToString());
        db.Open();
        using var pragmas = db.CreateCommand();
        pragmas.CommandText = "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=10000;";
        pragmas.ExecuteNonQuery();
        return db;
    }
}
