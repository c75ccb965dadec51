using System.Security.Cryptography;
using Pinhole.Transport.Updates;

namespace Pinhole.Transport.Tests.Updates;

[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ReleaseBundleTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-bundle-").FullName;
    private readonly (string Private, string Public) _key = ReleasePacker.CreateKeyPair();

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string MakeFolder()
    {
        var folder = Path.Combine(_dir, "build");
        Directory.CreateDirectory(Path.Combine(folder, "wwwroot", "css"));
        File.WriteAllText(Path.Combine(folder, "pinhole-edge"), "#!/bin/sh\nexec dotnet pinhole-edge.dll \"$@\"\n");
        File.SetUnixFileMode(Path.Combine(folder, "pinhole-edge"), (UnixFileMode)0b111_101_101);
        File.WriteAllBytes(Path.Combine(folder, "pinhole-edge.dll"), RandomNumberGenerator.GetBytes(100_000));
        File.WriteAllText(Path.Combine(folder, "wwwroot", "css", "page.css"), "body{}");
        return folder;
    }

    private string Pack(string version = "2.0.0", string? arch = null)
    {
        var bundle = Path.Combine(_dir, version + ".bundle");
        ReleasePacker.Pack(MakeFolder(), version, _key.Private, bundle, arch);
        return bundle;
    }

    private ReleaseManifest Unpack(string bundle, string target, string? publicPem = null, string arch = "linux-x64")
    {
        using var key = ReleaseBundle.LoadPublicKey(publicPem ?? _key.Public);
        using var s = File.OpenRead(bundle);
        return ReleaseUnpacker.Unpack(s, key, target, arch);
    }

    [Fact]
    public void A_packed_folder_unpacks_to_the_same_files_with_modes_and_a_release_json()
    {
        var bundle = Pack();
        var target = Path.Combine(_dir, "out");
        var manifest = Unpack(bundle, target);
        Assert.Equal("2.0.0", manifest.Version);
        Assert.Equal("any", manifest.Architecture); // a script, not an ELF: framework-dependent
        foreach (var f in new[] { "pinhole-edge", "pinhole-edge.dll", "wwwroot/css/page.css" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(_dir, "build", f)), File.ReadAllBytes(Path.Combine(target, f)));
        Assert.True((File.GetUnixFileMode(Path.Combine(target, "pinhole-edge")) & UnixFileMode.UserExecute) != 0);
        Assert.True((File.GetUnixFileMode(Path.Combine(target, "pinhole-edge.dll")) & UnixFileMode.UserExecute) == 0);
        Assert.Contains("\"version\":\"2.0.0\"", File.ReadAllText(Path.Combine(target, ReleasePacker.ReleaseInfoFile)), StringComparison.Ordinal);
    }

    [Fact]
    public void A_bundle_signed_by_another_key_is_refused_before_any_file_is_written()
    {
        var bundle = Pack();
        var target = Path.Combine(_dir, "out");
        var other = ReleasePacker.CreateKeyPair();
        var e = Assert.Throws<ReleaseBundleException>(() => Unpack(bundle, target, other.PublicKeyPem));
        Assert.StartsWith("bad signature", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public void A_changed_manifest_breaks_the_signature()
    {
        var bundle = Pack();
        var bytes = File.ReadAllBytes(bundle);
        var at = bytes.AsSpan().IndexOf("2.0.0"u8);
        bytes[at] = (byte)'9'; // version 9.0.0: still a valid manifest, no longer the signed one
        File.WriteAllBytes(bundle, bytes);
        var e = Assert.Throws<ReleaseBundleException>(() => Unpack(bundle, Path.Combine(_dir, "out")));
        Assert.StartsWith("bad signature", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tampered_file_is_refused_and_the_partly_unpacked_folder_deleted()
    {
        var bundle = Pack();
        var bytes = File.ReadAllBytes(bundle);
        bytes[^3000] ^= 1; // inside pinhole-edge.dll's or a later file's bytes
        File.WriteAllBytes(bundle, bytes);
        var target = Path.Combine(_dir, "out");
        var e = Assert.Throws<ReleaseBundleException>(() => Unpack(bundle, target));
        Assert.StartsWith("tampered file", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(target));
    }

    [Fact]
    public void A_truncated_bundle_is_refused()
    {
        var bundle = Pack();
        var bytes = File.ReadAllBytes(bundle);
        File.WriteAllBytes(bundle, bytes[..^1]);
        Assert.Throws<ReleaseBundleException>(() => Unpack(bundle, Path.Combine(_dir, "out")));
    }

    [Fact]
    public void A_bundle_for_another_architecture_is_refused()
    {
        var bundle = Pack(arch: "linux-arm64");
        var e = Assert.Throws<ReleaseBundleException>(() => Unpack(bundle, Path.Combine(_dir, "out"), arch: "linux-x64"));
        Assert.StartsWith("wrong architecture", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("a//b")]
    [InlineData("a/./b")]
    [InlineData("")]
    [InlineData("a b")]
    public void Unsafe_manifest_paths_are_refused(string path)
    {
        var json = $$"""{"format":1,"version":"1.0.0","architecture":"any","created":"2026-01-01T00:00:00Z","files":[{"path":"{{path}}","size":1,"sha256":"{{new string('a', 64)}}","executable":false}]}""";
        Assert.Throws<ReleaseBundleException>(() => ReleaseManifest.Parse(System.Text.Encoding.UTF8.GetBytes(json)));
    }

    [Fact]
    public void Every_prefix_of_a_head_asks_for_more()
    {
        var bytes = File.ReadAllBytes(Pack());
        Assert.True(ReleaseBundle.TryReadHead(bytes, out var head));
        for (var n = 0; n < head!.Length; n++)
            Assert.False(ReleaseBundle.TryReadHead(bytes.AsSpan(0, n), out _), $"prefix {n}");
        bytes[0] = (byte)'X';
        Assert.Throws<ReleaseBundleException>(() => ReleaseBundle.TryReadHead(bytes, out _));
    }

    [Theory]
    [InlineData("1.10.0", "1.9.2", 1)]
    [InlineData("2.0.0", "2.0.0", 0)]
    [InlineData("2.0", "2.0.0", 0)]
    [InlineData("2.0.0-rc.1", "2.0.0", -1)]
    [InlineData("2.0.0+build7", "2.0.0", 0)]
    [InlineData("10.0.0", "9.9.9", 1)]
    public void Versions_compare_part_by_part(string a, string b, int expected)
    {
        Assert.Equal(expected, ReleaseVersion.Compare(a, b));
        Assert.Equal(-expected, ReleaseVersion.Compare(b, a));
    }

    [Fact]
    public void Packing_checks_the_version_the_key_and_the_folder()
    {
        var folder = MakeFolder();
        Assert.Throws<ReleaseBundleException>(() => ReleasePacker.Pack(folder, "../1", _key.Private, Path.Combine(_dir, "x")));
        Assert.Throws<ReleaseBundleException>(() => ReleasePacker.Pack(folder, "1.0", _key.Public, Path.Combine(_dir, "x")));
        Assert.Throws<ReleaseBundleException>(() => ReleasePacker.Pack(Path.Combine(_dir, "missing"), "1.0", _key.Private, Path.Combine(_dir, "x")));
        Assert.Throws<ReleaseBundleException>(() => ReleasePacker.Pack(folder, "1.0", _key.Private, Path.Combine(_dir, "x"), "windows-x86"));
    }
}
