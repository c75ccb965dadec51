using System.Reflection;
using System.Text.Json.Nodes;
using Pinhole.Transport.Updates;

namespace Pinhole.EdgeHost.Updates;

/// <summary>
/// Which release this process is: the version written into its folder by <c>pinhole-relay releases pack</c>
/// (<c>release.json</c> next to the program), else the assembly's informational version (a development build).
/// </summary>
public static class ReleaseInfo
{
    private static readonly Lazy<string> LazyVersion = new(Load);

    /// <summary>The running release's version.</summary>
    public static string Version => LazyVersion.Value;

    private static string Load()
    {
        try
        {
            var path = Path.Combine(AppContext.BaseDirectory, ReleasePacker.ReleaseInfoFile);
            if (File.Exists(path) && JsonNode.Parse(File.ReadAllText(path))?["version"]?.GetValue<string>() is { } v && ReleaseVersion.IsValid(v))
                return v;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or InvalidOperationException)
        {
            // A damaged release.json: fall back to the assembly's version, which still names the build.
        }
        var informational = typeof(ReleaseInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        var plus = informational?.IndexOf('+', StringComparison.Ordinal) ?? -1;
        if (plus > 0) informational = informational![..plus];
        return ReleaseVersion.IsValid(informational) ? informational! : typeof(ReleaseInfo).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";
    }
}
