using System.Security.Cryptography;

namespace Pinhole.Transport.Updates;

/// <summary>
/// Checks a bundle and unpacks it. Order matters for a device that must never run something
/// unverified: the signature over the manifest is checked first, then the architecture and
/// version, and every file is hashed as it is written; a mismatch deletes what was written and throws.
/// </summary>
public static class ReleaseUnpacker
{
    /// <summary>Reads and checks the head of a bundle file: well-formed and signed by <paramref name="publicKey"/>.</summary>
    /// <exception cref="ReleaseBundleException">Malformed, truncated or not signed by the key.</exception>
    internal static ReleaseBundleHead ReadVerifiedHead(Stream bundle, ECDsa publicKey)
    {
        var head = ReadHead(bundle);
        if (!ReleaseBundle.Verify(head, publicKey))
            throw new ReleaseBundleException("bad signature: the bundle was not signed by this device's release key");
        return head;
    }

    /// <summary>Reads the head of a bundle (no signature check: for the relay's listing).</summary>
    /// <exception cref="ReleaseBundleException">Malformed or truncated.</exception>
    public static ReleaseBundleHead ReadHead(Stream bundle)
    {
        ArgumentNullException.ThrowIfNull(bundle);
        var buffer = new byte[64 * 1024];
        var filled = 0;
        while (true)
        {
            if (ReleaseBundle.TryReadHead(buffer.AsSpan(0, filled), out var head))
            {
                bundle.Position = head!.Length;
                return head;
            }
            if (filled == buffer.Length)
            {
                if (buffer.Length >= ReleaseBundle.MaxManifestBytes + 1024) throw new ReleaseBundleException("bundle head too large");
                Array.Resize(ref buffer, buffer.Length * 4);
            }
            bundle.Position = filled;
            var n = bundle.Read(buffer, filled, buffer.Length - filled);
            if (n == 0) throw new ReleaseBundleException("bundle truncated inside its head");
            filled += n;
        }
    }

    /// <summary>
    /// Verifies <paramref name="bundle"/> and writes its files under <paramref name="target"/> (which must not
    /// exist yet). Each file is flushed to disk. On any failure the partly written folder is deleted.
    /// </summary>
    /// <returns>The verified manifest.</returns>
    /// <exception cref="ReleaseBundleException">Bad signature, wrong architecture, tampered or truncated content.</exception>
    public static ReleaseManifest Unpack(Stream bundle, ECDsa publicKey, string target, string deviceArchitecture, CancellationToken cancellationToken = default)
    {
        var head = ReadVerifiedHead(bundle, publicKey);
        var manifest = head.Manifest;
        if (!ReleaseBundle.RunsOn(manifest.Architecture, deviceArchitecture))
            throw new ReleaseBundleException($"wrong architecture: the release is for {manifest.Architecture}, this device is {deviceArchitecture}");
        var expectedLength = head.Length + manifest.TotalBytes;
        if (bundle.Length != expectedLength)
            throw new ReleaseBundleException($"bundle is {bundle.Length} bytes, its manifest says {expectedLength}");
        if (Directory.Exists(target)) throw new IOException($"{target} already exists");
        Directory.CreateDirectory(target);
        try
        {
            var buffer = new byte[81920];
            foreach (var file in manifest.Files)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var path = Path.Combine(target, file.Path);
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                using (var o = new FileStream(path, FileMode.CreateNew, FileAccess.Write))
                {
                    var left = file.Size;
                    while (left > 0)
                    {
                        var n = bundle.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
                        if (n == 0) throw new ReleaseBundleException($"{file.Path}: bundle truncated");
                        hash.AppendData(buffer, 0, n);
                        o.Write(buffer, 0, n);
                        left -= n;
                    }
                    o.Flush(flushToDisk: true);
                }
                if (Convert.ToHexStringLower(hash.GetHashAndReset()) != file.Sha256)
                    throw new ReleaseBundleException($"tampered file: {file.Path} does not match the manifest's SHA-256");
                if (!OperatingSystem.IsWindows())
                    File.SetUnixFileMode(path, file.Executable
                        ? UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute
                        : UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            }
            return manifest;
        }
        catch
        {
            try { Directory.Delete(target, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
