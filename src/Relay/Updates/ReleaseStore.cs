using System.Collections.Concurrent;
using System.Data.Common;
using System.Security.Cryptography;
using Pinhole.Relay.Configuration;
using Pinhole.Transport.Updates;

namespace Pinhole.Relay.Updates;

/// <summary>A stored release bundle.</summary>
/// <param name="Manifest">Its manifest (version, architecture, files).</param>
/// <param name="Path">The bundle file.</param>
/// <param name="Size">Bundle bytes.</param>
/// <param name="Sha256">SHA-256 of the whole bundle (what the device checks a finished download against).</param>
public sealed record StoredRelease(ReleaseManifest Manifest, string Path, long Size, byte[] Sha256);

/// <summary>What <see cref="ReleaseStore.Add"/> stored.</summary>
/// <param name="Release">The stored bundle.</param>
/// <param name="Replaced">The bundle of the same version and architecture it replaced, or null.</param>
public sealed record AddedRelease(StoredRelease Release, StoredRelease? Replaced);

/// <summary>
/// Release bundles on the relay, one per version and architecture: <c>dataDir/releases/VERSION/ARCH.bundle</c>,
/// added whole (copy, fsync, rename). A bundle stored by an older relay as <c>dataDir/releases/VERSION.bundle</c>
/// is moved to its place the first time the store is used. The relay does not need the release key: it serves
/// bytes, and the device checks the signature.
/// With a shared database (<paramref name="shared"/>, docs/scale-out.md) a bundle added is also stored there, and a
/// bundle the database has is copied into this folder the first time it is asked for (and again when it was
/// replaced there), so a bundle added through one relay is served by every relay.
/// </summary>
public sealed class ReleaseStore(string dataDir, SharedReleaseBundles? shared = null) : IDisposable
{
    // How long the database's list of bundles is taken as current: devices ask for ranges many times a second.
    private static readonly TimeSpan SharedListFor = TimeSpan.FromSeconds(2);
    private readonly ConcurrentDictionary<string, (DateTime Modified, long Size, StoredRelease Release)> _cache = new(StringComparer.Ordinal);
    private readonly Lock _migrate = new();
    private readonly Lock _fetch = new();
    private bool _migrated;
    private (long At, IReadOnlyList<SharedBundle> List)? _sharedList;

    /// <summary>The store relay.json names: with <c>"database": "postgres://…"</c> its bundles are shared through the database.</summary>
    public static ReleaseStore Open(RelayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new ReleaseStore(config.DataDir, config.Database.Kind == DatabaseKind.Postgres ? new SharedReleaseBundles(config.Database) : null);
    }

    /// <summary>True when bundles are shared through the database.</summary>
    public bool IsShared => shared is not null;

    /// <summary>The folder.</summary>
    public string Folder { get; } = System.IO.Path.Combine(dataDir, "releases");

    /// <summary>
    /// Checks <paramref name="file"/> is a well-formed bundle (head, manifest, length) and stores it under its version
    /// and architecture, replacing a bundle stored before for the same pair (<see cref="AddedRelease.Replaced"/>).
    /// </summary>
    /// <exception cref="ReleaseBundleException">Not a bundle, or truncated.</exception>
    public AddedRelease Add(string file)
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
        Migrate();
        var (version, arch) = (head.Manifest.Version, head.Manifest.Architecture);
        StoredRelease? replaced;
        try
        {
            replaced = Get(version, arch);
        }
        catch (Exception e) when (e is ReleaseBundleException or IOException)
        {
            replaced = null; // a damaged file is simply overwritten
        }
        var target = PathOf(version, arch);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
        var temp = target + ".adding";
        File.Copy(file, temp, overwrite: true);
        using (var f = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite)) f.Flush(flushToDisk: true);
        File.Move(temp, target, overwrite: true);
        var stored = GetLocal(version, arch) ?? throw new IOException($"{target} vanished after it was stored");
        if (shared is not null)
        {
            Shared(() => shared.Put(version, arch, target, stored.Sha256, DateTimeOffset.UtcNow));
            _sharedList = null;
        }
        return new AddedRelease(stored, replaced);
    }

    /// <summary>The bundle of <paramref name="version"/> for <paramref name="architecture"/> (exactly), or null.</summary>
    /// <exception cref="ReleaseBundleException">The stored file is damaged, or is not that version and architecture.</exception>
    /// <exception cref="IOException">The shared database could not be read.</exception>
    public StoredRelease? Get(string version, string architecture)
    {
        if (!ReleaseVersion.IsValid(version) || !ReleaseManifest.Architectures.Contains(architecture)) return null;
        Migrate();
        Fetch(version, architecture);
        return GetLocal(version, architecture);
    }

    // The copy in this folder, as it is.
    private StoredRelease? GetLocal(string version, string architecture)
    {
        var path = PathOf(version, architecture);
        var info = new FileInfo(path);
        if (!info.Exists) return null;
        if (_cache.TryGetValue(path, out var cached) && cached.Modified == info.LastWriteTimeUtc && cached.Size == info.Length) return cached.Release;
        using var s = File.OpenRead(path);
        var head = ReleaseUnpacker.ReadHead(s);
        if (head.Manifest.Version != version || head.Manifest.Architecture != architecture)
            throw new ReleaseBundleException($"{path} holds {head.Manifest.Version} for {head.Manifest.Architecture}");
        s.Position = 0;
        var release = new StoredRelease(head.Manifest, path, info.Length, SHA256.HashData(s));
        _cache[path] = (info.LastWriteTimeUtc, info.Length, release);
        return release;
    }

    /// <summary>Every readable bundle of <paramref name="version"/>, by architecture; a damaged one is left out and its problem added to <paramref name="problems"/>.</summary>
    public IReadOnlyList<StoredRelease> ForVersion(string version, ICollection<string>? problems = null)
    {
        var list = new List<StoredRelease>();
        if (!ReleaseVersion.IsValid(version)) return list;
        foreach (var arch in ReleaseManifest.Architectures.Order(StringComparer.Ordinal))
        {
            try
            {
                if (Get(version, arch) is { } r) list.Add(r);
            }
            catch (Exception e) when (e is ReleaseBundleException or IOException)
            {
                problems?.Add($"{version} {arch}: {e.Message}");
            }
        }
        return list;
    }

    /// <summary>
    /// The bundle of <paramref name="version"/> to offer a device of <paramref name="deviceArchitecture"/>: the one for
    /// that architecture, else the <c>any</c> one. A device that does not say (null: an edge older than this relay) gets
    /// the <c>any</c> bundle, or the only one of that version. Otherwise null, with the reason in <paramref name="problem"/>.
    /// </summary>
    public StoredRelease? Choose(string version, string? deviceArchitecture, out string? problem)
    {
        var all = ForVersion(version);
        problem = null;
        if (all.Count == 0)
        {
            problem = $"release {version} is not stored on this relay";
            return null;
        }
        var stored = string.Join(", ", all.Select(r => r.Manifest.Architecture));
        if (!string.IsNullOrEmpty(deviceArchitecture))
        {
            var match = all.FirstOrDefault(r => r.Manifest.Architecture == deviceArchitecture) ?? all.FirstOrDefault(r => r.Manifest.Architecture == "any");
            if (match is null) problem = $"no bundle for this architecture ({deviceArchitecture}): {version} is stored for {stored}";
            return match;
        }
        var chosen = all.FirstOrDefault(r => r.Manifest.Architecture == "any") ?? (all.Count == 1 ? all[0] : null);
        if (chosen is null) problem = $"no bundle for this architecture: the device does not report its architecture (an older edge) and {version} is stored for {stored}";
        return chosen;
    }

    /// <summary>Every stored bundle, oldest version first, then by architecture; unreadable files are skipped.</summary>
    public IReadOnlyList<StoredRelease> List()
    {
        Migrate();
        if (shared is not null)
            foreach (var b in SharedList())
            {
                try
                {
                    Fetch(b.Version, b.Architecture);
                }
                catch (Exception e) when (e is ReleaseBundleException or IOException)
                {
                    // Listed from the local copy when there is one; damaged in the database: offered by nobody.
                }
            }
        if (!Directory.Exists(Folder)) return [];
        var list = new List<StoredRelease>();
        foreach (var dir in Directory.EnumerateDirectories(Folder))
            list.AddRange(ForVersion(System.IO.Path.GetFileName(dir))); // a damaged file is listed by nobody and offered to nobody
        list.Sort((a, b) => ReleaseVersion.Compare(a.Manifest.Version, b.Manifest.Version) is var c and not 0
            ? c : string.CompareOrdinal(a.Manifest.Version + " " + a.Manifest.Architecture, b.Manifest.Version + " " + b.Manifest.Architecture));
        return list;
    }

    /// <summary>
    /// Moves bundles an older relay stored as <c>releases/VERSION.bundle</c> to <c>releases/VERSION/ARCH.bundle</c>
    /// (one rename each, by what their manifest says). One that cannot be read stays where it is; one whose place is
    /// taken already (a newer bundle was added there) too.
    /// </summary>
    private void Migrate()
    {
        lock (_migrate)
        {
            if (_migrated) return;
            _migrated = true;
            if (!Directory.Exists(Folder)) return;
            foreach (var file in Directory.EnumerateFiles(Folder, "*.bundle"))
            {
                try
                {
                    ReleaseManifest manifest;
                    using (var s = File.OpenRead(file)) manifest = ReleaseUnpacker.ReadHead(s).Manifest;
                    var target = PathOf(manifest.Version, manifest.Architecture);
                    if (File.Exists(target)) continue;
                    Directory.CreateDirectory(System.IO.Path.GetDirectoryName(target)!);
                    File.Move(file, target);
                }
                catch (Exception e) when (e is ReleaseBundleException or IOException or UnauthorizedAccessException)
                {
                    // Damaged, or moved by another process (the CLI and the relay share the folder) meanwhile.
                }
            }
        }
    }

    /// <summary>
    /// With a shared database: makes the copy in this folder the database's bundle of that version and architecture
    /// when the database has one and the copy is missing or differs (replaced through another relay). A bundle only
    /// this folder has (added before the database was shared) stays as it is.
    /// </summary>
    private void Fetch(string version, string architecture)
    {
        if (shared is null) return;
        var entry = SharedList().FirstOrDefault(b => b.Version == version && b.Architecture == architecture);
        if (entry is null) return;
        lock (_fetch)
        {
            StoredRelease? local;
            try
            {
                local = GetLocal(version, architecture);
            }
            catch (ReleaseBundleException)
            {
                local = null; // damaged: the database's copy replaces it
            }
            if (local is not null && local.Sha256.AsSpan().SequenceEqual(entry.Sha256)) return;
            if (!Shared(() => shared.CopyTo(entry, PathOf(version, architecture)))) _sharedList = null; // replaced meanwhile: next time
        }
    }

    private IReadOnlyList<SharedBundle> SharedList()
    {
        if (shared is null) return [];
        var now = Environment.TickCount64;
        if (_sharedList is { } cached && now - cached.At < (long)SharedListFor.TotalMilliseconds) return cached.List;
        var list = Shared(shared.List);
        _sharedList = (now, list);
        return list;
    }

    // Database trouble reaches callers as an IOException: what they already expect of a bundle they cannot read.
    private static T Shared<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (DbException e)
        {
            throw new IOException("the shared database: " + e.Message, e);
        }
    }

    private static void Shared(Action action) => Shared(() =>
    {
        action();
        return 0;
    });

    /// <inheritdoc />
    public void Dispose() => shared?.Dispose();

    private string PathOf(string version, string architecture) => System.IO.Path.Combine(Folder, version, architecture + ".bundle");
}
