using Microsoft.Data.Sqlite;

namespace Pinhole.Relay.Tests;

// Microsoft.Data.Sqlite 10 runs here on SQLitePCLRaw 3.x (the registry lacks 2.1.13); prove the pair works.
public class SqliteSmokeTests
{
    [Fact]
    public void Embedded_sqlite_opens_writes_and_reads()
    {
        using var db = new SqliteConnection("Data Source=:memory:");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "CREATE TABLE t(x TEXT); INSERT INTO t VALUES ('gw1'); SELECT x FROM t;";
        Assert.Equal("gw1", cmd.ExecuteScalar());
    }
}
