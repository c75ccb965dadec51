using Xunit;

namespace Pinhole.Testing;

/// <summary>What an integration test needs from the machine; checked once per run.</summary>
[Flags]
public enum Needs
{
    /// <summary>Nothing beyond .NET.</summary>
    None = 0,

    /// <summary>Running as root.</summary>
    Root = 1,

    /// <summary>Root, plus <c>ip netns</c>, iptables NAT, tc and sysctl working (see <see cref="NatTopology.SkipReason"/>).</summary>
    NetworkNamespaces = 2,

    /// <summary>mosquitto and mosquitto_pub/sub/passwd.</summary>
    Mosquitto = 4,

    /// <summary>The GStreamer RTSP test camera (Debian's /usr/bin/python3 with python3-gi and the RTSP server).</summary>
    RtspCamera = 8,

    /// <summary>ffprobe and ffmpeg.</summary>
    Ffmpeg = 16,

    /// <summary>/usr/bin/chromium and /usr/bin/chromedriver.</summary>
    Chromium = 32,

    /// <summary>VLC (cvlc, from vlc-bin and vlc-plugin-base) and ffmpeg, for <see cref="VlcRtspServer"/>.</summary>
    Vlc = 64,

    /// <summary>A PostgreSQL server to start with <see cref="PostgresServer"/> (Debian package postgresql).</summary>
    Postgres = 128,

    /// <summary>HAProxy (Debian package haproxy), for <see cref="HaProxy"/>.</summary>
    HaProxy = 256,
}

/// <summary>Turns <see cref="Needs"/> into a skip reason.</summary>
public static class Requirements
{
    /// <summary>Null when everything in <paramref name="needs"/> is available, otherwise why not.</summary>
    public static string? SkipReason(Needs needs)
    {
        var reasons = new List<string>();
        if (needs.HasFlag(Needs.Root) && !needs.HasFlag(Needs.NetworkNamespaces) && !Tools.IsRoot)
            reasons.Add("needs root");
        if (needs.HasFlag(Needs.NetworkNamespaces) && NatTopology.SkipReason is { } ns)
            reasons.Add(ns);
        if (needs.HasFlag(Needs.Mosquitto) && MosquittoBroker.SkipReason is { } mq)
            reasons.Add(mq);
        if (needs.HasFlag(Needs.RtspCamera) && RtspCamera.SkipReason is { } cam)
            reasons.Add(cam);
        if (needs.HasFlag(Needs.Ffmpeg) && Ffprobe.SkipReason is { } ff)
            reasons.Add(ff);
        if (needs.HasFlag(Needs.Chromium) && Chromium.SkipReason is { } chrome)
            reasons.Add(chrome);
        if (needs.HasFlag(Needs.Vlc) && VlcRtspServer.SkipReason is { } vlc)
            reasons.Add(vlc);
        if (needs.HasFlag(Needs.Postgres) && PostgresServer.SkipReason is { } pg)
            reasons.Add(pg);
        if (needs.HasFlag(Needs.HaProxy) && HaProxy.SkipReason is { } ha)
            reasons.Add(ha);
        return reasons.Count == 0 ? null : string.Join("; ", reasons);
    }
}

/// <summary>A fact skipped (with the reason) when the machine lacks what it <see cref="Needs"/>: <c>[RequiresFact(Needs.Mosquitto | Needs.Ffmpeg)]</c>.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RequiresFactAttribute : FactAttribute
{
    /// <summary>Skips the test unless everything in <paramref name="needs"/> is available.</summary>
    public RequiresFactAttribute(Needs needs)
    {
        Needs = needs;
        Skip = Requirements.SkipReason(needs);
    }

    /// <summary>What the test needs.</summary>
    public Needs Needs { get; }
}

/// <summary>A theory skipped (with the reason) when the machine lacks what it <see cref="Needs"/>.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RequiresTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips the theory unless everything in <paramref name="needs"/> is available.</summary>
    public RequiresTheoryAttribute(Needs needs)
    {
        Needs = needs;
        Skip = Requirements.SkipReason(needs);
    }

    /// <summary>What the theory needs.</summary>
    public Needs Needs { get; }
}

/// <summary>A fact skipped unless every named program exists: <c>[RequiresToolsFact("mosquitto", "mosquitto_pub")]</c>.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RequiresToolsFactAttribute : FactAttribute
{
    /// <summary>Skips the test unless every program in <paramref name="tools"/> is installed.</summary>
    public RequiresToolsFactAttribute(params string[] tools)
    {
        Tools = tools;
        Skip = Testing.Tools.SkipReason(tools);
    }

    /// <summary>The programs the test needs.</summary>
    public IReadOnlyList<string> Tools { get; }
}

/// <summary>A theory skipped unless every named program exists.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RequiresToolsTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips the theory unless every program in <paramref name="tools"/> is installed.</summary>
    public RequiresToolsTheoryAttribute(params string[] tools)
    {
        Tools = tools;
        Skip = Testing.Tools.SkipReason(tools);
    }

    /// <summary>The programs the theory needs.</summary>
    public IReadOnlyList<string> Tools { get; }
}

/// <summary>A fact skipped unless the tests run as root.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RequiresRootFactAttribute : FactAttribute
{
    /// <summary>Skips the test unless running as root.</summary>
    public RequiresRootFactAttribute()
    {
        if (!Tools.IsRoot)
            Skip = "needs root (run the tests as root, as ./build.sh test does in CI)";
    }
}

/// <summary>A theory skipped unless the tests run as root.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
public sealed class RequiresRootTheoryAttribute : TheoryAttribute
{
    /// <summary>Skips the theory unless running as root.</summary>
    public RequiresRootTheoryAttribute()
    {
        if (!Tools.IsRoot)
            Skip = "needs root (run the tests as root, as ./build.sh test does in CI)";
    }
}
