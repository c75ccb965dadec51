using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pinhole.Transport.Updates;

/// <summary>One file of a release: where it goes (relative to the release folder), how big it is, its SHA-256, and whether it is executable.</summary>
/// <param name="Path">Relative path with <c>/</c> separators; no <c>..</c>, no leading <c>/</c>.</param>
/// <param name="Size">Bytes.</param>
/// <param name="Sha256">Lower-case hex SHA-256 of the content.</param>
/// <param name="Executable">True for programs and scripts (installed 0755, else 0644).</param>
public sealed record ReleaseFile(string Path, long Size, string Sha256, bool Executable);

/// <summary>
/// What a release bundle contains: its version, the architecture it runs on, and every file with its
/// hash. The bundle's signature covers the manifest's exact bytes, and the manifest covers every
/// file, so one signature check plus one hash per file proves the whole release.
/// </summary>
/// <param name="Version">Release version (see <see cref="ReleaseVersion.IsValid"/>).</param>
/// <param name="Architecture"><c>linux-arm64</c>, <c>linux-x64</c> or <c>any</c>.</param>
/// <param name="Created">When the bundle was packed (UTC).</param>
/// <param name="Files">Files in the order their bytes follow in the bundle.</param>
public sealed record ReleaseManifest(string Version, string Architecture, DateTimeOffset Created, IReadOnlyList<ReleaseFile> Files)
{
    /// <summary>The manifest format this code writes and reads.</summary>
    public const int Format = 1;

    /// <summary>Most files in one release.</summary>
    public const int MaxFiles = 4096;

    /// <summary>Largest release (sum of file sizes): 1 GiB.</summary>
    public const long MaxTotalBytes = 1L << 30;

    /// <summary>Architectures a bundle may name.</summary>
    public static readonly IReadOnlyList<string> Architectures = ["linux-arm64", "linux-x64", "any"];

    /// <summary>Sum of the file sizes.</summary>
    public long TotalBytes => Files.Sum(f => f.Size);

    /// <summary>The manifest as UTF-8 JSON (what gets signed).</summary>
    internal byte[] ToJsonBytes()
    {
        var files = new JsonArray();
        foreach (var f in Files)
            files.Add(new JsonObject { ["path"] = f.Path, ["size"] = f.Size, ["sha256"] = f.Sha256, ["executable"] = f.Executable });
        var o = new JsonObject
        {
            ["format"] = Format,
            ["version"] = Version,
            ["architecture"] = Architecture,
            ["created"] = Created.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            ["files"] = files,
        };
        return JsonSerializer.SerializeToUtf8Bytes(o);
    }

    /// <summary>Parses and checks a manifest: every field present and in range, paths safe to join under a folder, no duplicates.</summary>
    /// <exception cref="ReleaseBundleException">Anything malformed.</exception>
    public static ReleaseManifest Parse(ReadOnlySpan<byte> json)
    {
        JsonObject o;
        try
        {
            o = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions { MaxDepth = 8 }) as JsonObject
                ?? throw new ReleaseBundleException("manifest is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new ReleaseBundleException($"manifest is not valid JSON: {e.Message}", e);
        }
        try
        {
            var format = (int?)o["format"] ?? throw new ReleaseBundleException("manifest has no format");
            if (format != Format) throw new ReleaseBundleException($"manifest format {format} is not supported (this device reads {Format})");
            var version = (string?)o["version"] ?? throw new ReleaseBundleException("manifest has no version");
            if (!ReleaseVersion.IsValid(version)) throw new ReleaseBundleException($"manifest version \"{version}\" is not valid");
            var arch = (string?)o["architecture"] ?? throw new ReleaseBundleException("manifest has no architecture");
            if (!Architectures.Contains(arch)) throw new ReleaseBundleException($"manifest architecture \"{arch}\" is not one of {string.Join(", ", Architectures)}");
            var createdText = (string?)o["created"] ?? throw new ReleaseBundleException("manifest has no created time");
            if (!DateTimeOffset.TryParse(createdText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var created))
                throw new ReleaseBundleException($"manifest created time \"{createdText}\" is not a time");
            var array = o["files"] as JsonArray ?? throw new ReleaseBundleException("manifest has no files");
            if (array.Count is 0 or > MaxFiles) throw new ReleaseBundleException($"a release has 1 to {MaxFiles} files, not {array.Count}");
            var files = new List<ReleaseFile>(array.Count);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            long total = 0;
            foreach (var node in array)
            {
                var f = node as JsonObject ?? throw new ReleaseBundleException("a manifest file entry is not an object");
                var path = (string?)f["path"] ?? throw new ReleaseBundleException("a manifest file has no path");
                if (!IsSafePath(path)) throw new ReleaseBundleException($"manifest path \"{path}\" is not a safe relative path");
                if (!seen.Add(path)) throw new ReleaseBundleException($"manifest lists \"{path}\" twice");
                var size = (long?)f["size"] ?? throw new ReleaseBundleException($"{path}: no size");
                if (size < 0) throw new ReleaseBundleException($"{path}: negative size");
                total += size;
                if (total > MaxTotalBytes) throw new ReleaseBundleException($"release larger than {MaxTotalBytes} bytes");
                var hash = (string?)f["sha256"] ?? throw new ReleaseBundleException($"{path}: no sha256");
                if (hash.Length != 64 || !hash.All(char.IsAsciiHexDigitLower)) throw new ReleaseBundleException($"{path}: sha256 is not 64 lower-case hex digits");
                var exec = (bool?)f["executable"] ?? false;
                files.Add(new ReleaseFile(path, size, hash, exec));
            }
            // A file and a folder of the same name cannot both exist.
            foreach (var path in seen)
                if (seen.Contains(path + "/")) throw new ReleaseBundleException($"manifest path \"{path}\" is both a file and a folder");
            foreach (var path in seen)
                for (var i = path.IndexOf('/', StringComparison.Ordinal); i > 0; i = path.IndexOf('/', i + 1))
                    if (seen.Contains(path[..i])) throw new ReleaseBundleException($"manifest path \"{path[..i]}\" is both a file and a folder");
            return new ReleaseManifest(version, arch, created.ToUniversalTime(), files);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            throw new ReleaseBundleException($"manifest field has the wrong type: {e.Message}", e);
        }
    }

    /// <summary>True for a relative path of segments of <c>A-Z a-z 0-9 . _ + - @</c>, none empty, <c>.</c> or <c>..</c>, at most 255 characters.</summary>
    internal static bool IsSafePath(string path)
    {
        if (path.Length is 0 or > 255) return false;
        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0 || segment is "." or "..") return false;
            foreach (var c in segment)
                if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' or '+' or '@')) return false;
        }
        return true;
    }
}

/// <summary>Release version strings: what is allowed and how two compare.</summary>
public static class ReleaseVersion
{
    /// <summary>True for 1-64 characters of <c>A-Z a-z 0-9 . _ + -</c> starting with a letter or digit (they become folder names).</summary>
    public static bool IsValid(string? version) =>
        version is { Length: >= 1 and <= 64 } && char.IsAsciiLetterOrDigit(version[0]) &&
        version.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '+' or '-');

    /// <summary>
    /// Compares dotted versions part by part (<c>1.10.0</c> &gt; <c>1.9.2</c>): numeric parts as numbers, others
    /// ordinally; a build suffix after <c>+</c> is ignored, and a pre-release after <c>-</c> sorts before the release.
    /// </summary>
    public static int Compare(string a, string b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        static (string Core, string? Pre) Split(string v)
        {
            var plus = v.IndexOf('+', StringComparison.Ordinal);
            if (plus >= 0) v = v[..plus];
            var dash = v.IndexOf('-', StringComparison.Ordinal);
            return dash >= 0 ? (v[..dash], v[(dash + 1)..]) : (v, null);
        }
        var (coreA, preA) = Split(a);
        var (coreB, preB) = Split(b);
        var c = ComparePieces(coreA, coreB);
        if (c != 0) return c;
        if (preA is null) return preB is null ? 0 : 1;
        if (preB is null) return -1;
        return ComparePieces(preA, preB);
    }

    private static int ComparePieces(string a, string b)
    {
        var pa = a.Split('.');
        var pb = b.Split('.');
        for (var i = 0; i < Math.Max(pa.Length, pb.Length); i++)
        {
            var x = i < pa.Length ? pa[i] : "0";
            var y = i < pb.Length ? pb[i] : "0";
            var nx = long.TryParse(x, NumberStyles.None, CultureInfo.InvariantCulture, out var vx);
            var ny = long.TryParse(y, NumberStyles.None, CultureInfo.InvariantCulture, out var vy);
            var c = nx && ny ? vx.CompareTo(vy) : nx ? -1 : ny ? 1 : string.CompareOrdinal(x, y);
            if (c != 0) return Math.Sign(c);
        }
        return 0;
    }
}
