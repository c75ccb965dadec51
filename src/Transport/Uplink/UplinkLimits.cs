namespace Pinhole.Transport.Uplink;

/// <summary>Size limits the decoder enforces before it buffers or allocates anything.</summary>
public sealed record UplinkLimits
{
    /// <summary>Largest message body in bytes (an access unit plus 34 bytes of fields). Default 8 MiB.</summary>
    public int MaxMessageBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>Most tracks in one stream announce. Default 8.</summary>
    public int MaxTracks { get; init; } = 8;

    /// <summary>Most parameter sets per track. Default 8.</summary>
    public int MaxParameterSets { get; init; } = 8;

    /// <summary>The defaults.</summary>
    public static UplinkLimits Default { get; } = new();
}
