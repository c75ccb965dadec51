using System.Text.Json.Nodes;

namespace Pinhole.Testing;

/// <summary>
/// Release folders for update tests and benchmarks: the framework-dependent edge as this process's
/// output holds it (a project that references the edge gets its files), with a <c>pinhole-edge</c>
/// launcher script, as <c>pinhole-relay releases pack</c> takes it.
/// </summary>
public static class EdgeReleaseFolder
{
    /// <summary>The launcher a working release has: runs the edge's dll with the arguments it got.</summary>
    public const string WorkingLauncher = "#!/bin/sh\nexec dotnet \"$(dirname \"$0\")/pinhole-edge.dll\" \"$@\"\n";

    /// <summary>Writes the edge's files into <paramref name="dir"/> and <paramref name="launcher"/> (null: the working one) as <c>pinhole-edge</c>.</summary>
    public static void Make(string dir, string? launcher = null)
    {
        Directory.CreateDirectory(dir);
        var from = AppContext.BaseDirectory;
        foreach (var name in Files(from))
            if (File.Exists(Path.Combine(from, name))) File.Copy(Path.Combine(from, name), Path.Combine(dir, name), overwrite: true);
        if (Directory.Exists(Path.Combine(from, "wwwroot"))) CopyDirectory(Path.Combine(from, "wwwroot"), Path.Combine(dir, "wwwroot"));
        var exe = Path.Combine(dir, "pinhole-edge");
        File.WriteAllText(exe, launcher ?? WorkingLauncher);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(exe, (UnixFileMode)0b111_101_101);
    }

    /// <summary>Copies a folder tree.</summary>
    public static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)), overwrite: true);
        foreach (var sub in Directory.GetDirectories(from)) CopyDirectory(sub, Path.Combine(to, Path.GetFileName(sub)));
    }

    // The edge's own files and every runtime assembly its deps.json names (projects and packages), so
    // a new dependency of the edge needs no change here. A hand-kept list once lacked
    // Microsoft.Extensions.Hosting.Systemd, and every release the tests built died at start.
    private static HashSet<string> Files(string from)
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "pinhole-edge.dll", "pinhole-edge.deps.json", "pinhole-edge.runtimeconfig.json" };
        var deps = JsonNode.Parse(File.ReadAllText(Path.Combine(from, "pinhole-edge.deps.json")))!;
        foreach (var target in deps["targets"]!.AsObject())
            foreach (var library in target.Value!.AsObject())
                if (library.Value?["runtime"] is JsonObject runtime)
                    foreach (var asset in runtime) names.Add(Path.GetFileName(asset.Key));
        return names;
    }
}
