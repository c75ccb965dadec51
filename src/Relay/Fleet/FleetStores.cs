using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.Fleet;

/// <summary>Opens the fleet store relay.json names: SQLite in dataDir (default) or the shared PostgreSQL database.</summary>
public static class FleetStores
{
    /// <summary>Opens (creating or migrating the schema when needed) the configured fleet store.</summary>
    public static IFleetStore Open(RelayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Database.Kind == DatabaseKind.Postgres ? new PostgresFleetStore(config.Database) : new SqliteFleetStore(config.DataDir);
    }
}
