namespace Pinhole.Transport.Metrics;

/// <summary>
/// Names of the meters the apps create their instruments on (docs/telemetry.md, "Adding a metric").
/// Each app exports its own meter at <c>/metrics</c>.
/// </summary>
public static class PinholeMeters
{
    /// <summary>The edge host's meter.</summary>
    public const string Edge = "Pinhole.Edge";

    /// <summary>The relay's meter.</summary>
    public const string Relay = "Pinhole.Relay";
}
