using System.Security.Cryptography;

namespace Pinhole.Transport.Updates;

/// <summary>Packs a release folder (a published <c>pinhole-edge</c>) into a signed bundle, and makes signing keys.</summary>
public static class ReleasePacker
{
    /// <summary>Name of the file the packer adds to every release: the version and architecture, read by the edge at start.</summary>
    public const string ReleaseInfoFile = "release.json";

    /// <summary>Creates a P-256 key pair as PEM: the private key (PKCS#8) and the public key (SubjectPublicKeyInfo).</summary>
    public static (string PrivateKeyPem, string PublicKeyPem) CreateKeyPair()
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        return (key.ExportPkcs8PrivateKeyPem(), key.ExportSubjectPublicKeyInfoPem());
    }

    /// <summary>
    /// The architecture of the release in <paramref name="folder"/>: from the ELF header of its
    /// <c>pinhole-edge</c> (self-contained builds), else <c>any</c> (framework-dependent: a script or
    /// the .NET apphost of another platform is not told apart, so pass the architecture explicitly then).
    /// </summary>
    internal static string DetectArchitecture(string folder)
    {
        var exe = Path.Combine(folder, "pinhole-edge");
        if (!File.Exists(exe)) return "any";
        Span<byte> header = stackalloc byte[20];
        using var f = File.OpenRead(exe);
        if (f.ReadAtLeast(header, header.Length, throwOnEndOfStream: false) < header.Length) return "any";
        if (!header[..4].SequenceEqual("\u007fELF"u8)) return "any";
        var machine = header[5] == 2 ? (header[18] << 8) | header[19] : header[18] | (header[19] << 8);
        return machine switch
        {
            0x3E => "linux-x64",
            0xB7 => "linux-arm64",
            _ => throw new ReleaseBundleException($"{exe}: ELF machine 0x{machine:x} is not linux-x64 or linux-arm64"),
        };
    }

    /// <summary>
    /// Packs every file under <paramref name="folder"/> (plus a generated <see cref="ReleaseInfoFile"/>)
    /// into a bundle at <paramref name="output"/>, signed with <paramref name="privateKeyPem"/>.
    /// Written to a temporary file and renamed, so a bundle on disk is always whole.
    /// </summary>
    /// <returns>The manifest written.</returns>
    /// <exception cref="ReleaseBundleException">A bad version, key or folder content.</exception>
    public static ReleaseManifest Pack(string folder, string version, string privateKeyPem, string output, string? architecture = null, TimeProvider? time = null)
    {
        if (!ReleaseVersion.IsValid(version)) throw new ReleaseBundleException($"version \"{version}\" must be 1-64 of A-Z a-z 0-9 . _ + - starting with a letter or digit");
        if (!Directory.Exists(folder)) throw new ReleaseBundleException($"folder not found: {folder}");
        if (!File.Exists(Path.Combine(folder, "pinhole-edge"))) throw new ReleaseBundleException($"{folder} has no pinhole-edge (the service starts ROOT/current/pinhole-edge)");
        architecture ??= DetectArchitecture(folder);
        if (!ReleaseManifest.Architectures.Contains(architecture)) throw new ReleaseBundleException($"architecture \"{architecture}\" is not one of {string.Join(", ", ReleaseManifest.Architectures)}");

        using var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(privateKeyPem);
            if (key.KeySize != 256) throw new ReleaseBundleException("the signing key must be ECDSA P-256");
            _ = key.ExportParameters(includePrivateParameters: true);
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            throw new ReleaseBundleException($"not a PEM ECDSA private key: {e.Message}", e);
        }

        var info = System.Text.Encoding.UTF8.GetBytes($"{{\"version\":\"{version}\",\"architecture\":\"{architecture}\"}}\n");
        var sources = new List<(ReleaseFile File, string? Source)>();
        foreach (var path in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(folder, path).Replace('\\', '/');
            if (relative == ReleaseInfoFile) continue;
            if (!ReleaseManifest.IsSafePath(relative)) throw new ReleaseBundleException($"{relative}: file names in a release are A-Z a-z 0-9 . _ + - @ only");
            var attributes = File.GetAttributes(path);
            if ((attributes & FileAttributes.ReparsePoint) != 0) throw new ReleaseBundleException($"{relative}: symbolic links are not packed; copy the file");
            string hash;
            using (var s = File.OpenRead(path)) hash = Convert.ToHexStringLower(SHA256.HashData(s));
            var executable = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & UnixFileMode.UserExecute) != 0;
            sources.Add((new ReleaseFile(relative, new FileInfo(path).Length, hash, executable), path));
        }
        sources.Add((new ReleaseFile(ReleaseInfoFile, info.Length, Convert.ToHexStringLower(SHA256.HashData(info)), false), null));
        var manifest = new ReleaseManifest(version, architecture, (time ?? TimeProvider.System).GetUtcNow(), [.. sources.Select(s => s.File)]);
        var manifestBytes = manifest.ToJsonBytes();
        ReleaseManifest.Parse(manifestBytes); // the same checks a device makes

        var temp = output + ".tmp";
        using (var o = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            o.Write(ReleaseBundle.WriteHead(manifestBytes, ReleaseBundle.Sign(manifestBytes, key)));
            foreach (var (file, source) in sources)
            {
                if (source is null)
                {
                    o.Write(info);
                    continue;
                }
                using var s = File.OpenRead(source);
                s.CopyTo(o);
                if (s.Length != file.Size) throw new ReleaseBundleException($"{file.Path} changed while packing");
            }
            o.Flush(flushToDisk: true);
        }
        File.Move(temp, output, overwrite: true);
        return manifest;
    }
}
