using System.Collections.Concurrent;
using System.Security.Cryptography;
using Pinhole.Transport.Updates;

namespace Pinhole.Relay.Updates;

/// <summary>A stored release bundle.</summary>
/// <param name="Manifest">Its manifest (version, architecture, files).</param>
/// <param name="Path">The bundle file.</param>
/// <param name="Size">Bundle bytes.</param>
/// <param name="Sha256">SHA-256 of the whole bundle (what the device checks a finished download against).</param>
public sealed record StoredRelease(ReleaseManifest Manifest, string Path, long Size, byte[] Sha256);

/// <summary>
/// Release bundles on the relay: <c>dataDir/releases/VERSION.bundle</c>, added whole (copy, fsync, rename).
/// The relay does not need the release key: it serves bytes, and the device checks the signature.
/// </summary>
public sealed class ReleaseStore(string dataDir)
{
    private readonly ConcurrentDictionary<string, (DateTime Modified, long Size, StoredRelease Release)> _cache = new(StringComparer.Ordinal);

    /// <summary>The folder.</summary>
    public string Folder { get; } = System.IO.Path.Combine(dataDir, "releases");

    /// <summary>Checks <paramref name="file"/> is a well-formed bundle (head, manifest, length) and stores it under its version.</summary>
    /// <exception cref="ReleaseBundleException">Not a bundle, or truncated.</exception>
    public StoredRelease Add(string file)
    {
        ReleaseBundleHead head;
        long length;
        using (var s = File.OpenRead(file))
        {
            head = ReleaseUnpacker.ReadHead(s);
            length = s.Length;
        }
        if (length != head.Length + head.Manifest.TotalBytes)
            throw new ReleaseBundleException($"{file} is {length} bytes; its manifest says {head.Length + head.Manifest.TotalBytes}");
        Directory.CreateDirectory(Folder);
        var target = PathOf(head.Manifest.Version);
        var temp = target + ".adding";
        File.Copy(file, temp, overwrite: true);
        using (var f = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite)) f.Flush(flushToDisk: true);
        File.Move(temp, target, overwrite: true);
        return Get(head.Manifest.Version) ?? throw new IOException($"{target} vanished after it was stored");
    }

    /// <summary>The release of <paramref name="version"/>, or null.</summary>
    public StoredRelease? Get(string version)
    {
        if (!ReleaseVersion.IsValid(version)) return null;
        var path = PathOf(version);
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        if (_cache.TryGetValue(version, out var cached) && cached.Modified == info.LastWriteTimeUtc && cached.Size == info.Length) return cached.Release;
        using var s = File.OpenRead(path);
        var head = ReleaseUnpacker.ReadHead(s);
        s.Position = 0;
        var release = new StoredRelease(head.Manifest, path, info.Length, SHA256.HashData(s));
        _cache[version] = (info.LastWriteTimeUtc, info.Length, release);
        return release;
    }

    /// <summary>Every stored release, oldest version first; unreadable files are skipped.</summary>
    public IReadOnlyList<StoredRelease> List()
    {
        if (!Directory.Exists(Folder)) return [];
        var list = new List<StoredRelease>();
        foreach (var file in Directory.EnumerateFiles(Folder, "*.bundle"))
        {
            try
            {
                if (Get(System.IO.Path.GetFileNameWithoutExtension(file)) is { } r) list.Add(r);
            }
            catch (Exception e) when (e is ReleaseBundleException or IOException)
            {
                // A damaged file is listed by nobody and offered to nobody.
            }
        }
        list.Sort((a, b) => ReleaseVersion.Compare(a.Manifest.Version, b.Manifest.Version));
        return list;
    }

    private string PathOf(string version) => System.IO.Path.Combine(Folder, version + ".bundle");
}
