using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Pinhole.Transport.Updates;

/// <summary>The signed head of a bundle: the manifest's exact bytes, the parsed manifest, and the signature over those bytes.</summary>
/// <param name="ManifestBytes">The manifest as signed.</param>
/// <param name="Manifest">The manifest parsed and checked.</param>
/// <param name="Signature">ECDSA P-256 over SHA-256 of <paramref name="ManifestBytes"/>, IEEE P1363 (r‖s).</param>
/// <param name="Length">Bytes the head takes in the bundle; the files' bytes follow.</param>
public sealed record ReleaseBundleHead(byte[] ManifestBytes, ReleaseManifest Manifest, byte[] Signature, int Length);

/// <summary>
/// The release bundle format (docs/updates.md): one file a relay stores and sends as is.
/// <code>
/// offset size field
/// 0      8    magic "PHNBNDL1"
/// 8      4    manifest length n (big-endian, at most 1 MiB)
/// 12     n    manifest: UTF-8 JSON (<see cref="ReleaseManifest"/>)
/// 12+n   2    signature length m (at most 512)
/// 14+n   m    ECDSA P-256 signature of SHA-256(manifest), IEEE P1363
/// ...         every file's bytes, in manifest order, back to back
/// </code>
/// Pure: bytes in, head out. Reading and writing files is in <see cref="ReleasePacker"/> and <see cref="ReleaseUnpacker"/>.
/// </summary>
public static class ReleaseBundle
{
    /// <summary>The first 8 bytes of every bundle.</summary>
    public static ReadOnlySpan<byte> Magic => "PHNBNDL1"u8;

    /// <summary>Largest manifest.</summary>
    public const int MaxManifestBytes = 1 << 20;

    /// <summary>Largest signature.</summary>
    public const int MaxSignatureBytes = 512;

    /// <summary>
    /// Reads the head from the start of a bundle. False means more bytes are needed (nothing consumed);
    /// a malformed head throws. The signature is not checked here: see <see cref="Verify"/>.
    /// </summary>
    /// <exception cref="ReleaseBundleException">Not a bundle, sizes out of range, or a malformed manifest.</exception>
    internal static bool TryReadHead(ReadOnlySpan<byte> data, out ReleaseBundleHead? head)
    {
        head = null;
        if (data.Length < Magic.Length) return false;
        if (!data[..Magic.Length].SequenceEqual(Magic)) throw new ReleaseBundleException("not a Pinhole release bundle (bad magic)");
        if (data.Length < 12) return false;
        var n = BinaryPrimitives.ReadUInt32BigEndian(data[8..]);
        if (n is 0 or > MaxManifestBytes) throw new ReleaseBundleException($"manifest length {n} out of range (1..{MaxManifestBytes})");
        if (data.Length < 12 + (int)n + 2) return false;
        var manifestBytes = data.Slice(12, (int)n).ToArray();
        var m = BinaryPrimitives.ReadUInt16BigEndian(data[(12 + (int)n)..]);
        if (m is 0 or > MaxSignatureBytes) throw new ReleaseBundleException($"signature length {m} out of range (1..{MaxSignatureBytes})");
        var length = 12 + (int)n + 2 + m;
        if (data.Length < length) return false;
        var signature = data.Slice(12 + (int)n + 2, m).ToArray();
        head = new ReleaseBundleHead(manifestBytes, ReleaseManifest.Parse(manifestBytes), signature, length);
        return true;
    }

    /// <summary>Writes a head for <paramref name="manifestBytes"/> signed with <paramref name="signature"/>.</summary>
    internal static byte[] WriteHead(ReadOnlySpan<byte> manifestBytes, ReadOnlySpan<byte> signature)
    {
        if (manifestBytes.Length is 0 or > MaxManifestBytes) throw new ArgumentException("manifest size out of range", nameof(manifestBytes));
        if (signature.Length is 0 or > MaxSignatureBytes) throw new ArgumentException("signature size out of range", nameof(signature));
        var head = new byte[12 + manifestBytes.Length + 2 + signature.Length];
        Magic.CopyTo(head);
        BinaryPrimitives.WriteUInt32BigEndian(head.AsSpan(8), (uint)manifestBytes.Length);
        manifestBytes.CopyTo(head.AsSpan(12));
        BinaryPrimitives.WriteUInt16BigEndian(head.AsSpan(12 + manifestBytes.Length), (ushort)signature.Length);
        signature.CopyTo(head.AsSpan(14 + manifestBytes.Length));
        return head;
    }

    /// <summary>Signs manifest bytes with an ECDSA P-256 private key.</summary>
    public static byte[] Sign(ReadOnlySpan<byte> manifestBytes, ECDsa privateKey)
    {
        ArgumentNullException.ThrowIfNull(privateKey);
        return privateKey.SignData(manifestBytes, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <summary>True when <paramref name="head"/>'s signature is valid for its manifest under <paramref name="publicKey"/>.</summary>
    public static bool Verify(ReleaseBundleHead head, ECDsa publicKey)
    {
        ArgumentNullException.ThrowIfNull(head);
        ArgumentNullException.ThrowIfNull(publicKey);
        return publicKey.VerifyData(head.ManifestBytes, head.Signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation);
    }

    /// <summary>Loads a P-256 public key from PEM (<c>BEGIN PUBLIC KEY</c>).</summary>
    /// <exception cref="ReleaseBundleException">Not a P-256 public key.</exception>
    public static ECDsa LoadPublicKey(string pem)
    {
        var key = ECDsa.Create();
        try
        {
            key.ImportFromPem(pem);
            if (key.KeySize != 256) throw new ReleaseBundleException($"the release key is {key.KeySize}-bit; releases are signed with P-256");
            return key;
        }
        catch (Exception e) when (e is ArgumentException or CryptographicException)
        {
            key.Dispose();
            throw new ReleaseBundleException($"not a PEM ECDSA public key: {e.Message}", e);
        }
        catch
        {
            key.Dispose();
            throw;
        }
    }

    /// <summary>The architecture this process runs on, as bundles name it (<c>linux-arm64</c>, <c>linux-x64</c>, or the runtime identifier otherwise).</summary>
    public static string CurrentArchitecture => System.Runtime.InteropServices.RuntimeInformation.OSArchitecture switch
    {
        System.Runtime.InteropServices.Architecture.X64 => "linux-x64",
        System.Runtime.InteropServices.Architecture.Arm64 => "linux-arm64",
        var a => "linux-" + a.ToString().ToLowerInvariant(),
    };

    /// <summary>True when a bundle for <paramref name="bundleArchitecture"/> runs on <paramref name="deviceArchitecture"/> (<c>any</c> runs everywhere).</summary>
    public static bool RunsOn(string bundleArchitecture, string deviceArchitecture) =>
        bundleArchitecture == "any" || bundleArchitecture == deviceArchitecture;
}
