using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Pinhole.Testing;

/// <summary>A server certificate issued by a <see cref="TestCertificateAuthority"/>, written as PEM files.</summary>
/// <param name="Certificate">The certificate with its private key (for Kestrel/SslStream in-process).</param>
/// <param name="CertificatePath">The certificate, PEM (mosquitto certfile, relay.json tls.certificate).</param>
/// <param name="KeyPath">The unencrypted PKCS#8 private key, PEM (mosquitto keyfile, relay.json tls.key).</param>
public sealed record TestServerCertificate(X509Certificate2 Certificate, string CertificatePath, string KeyPath);

/// <summary>
/// A private CA made in memory for one test (ECDSA P-256), with its certificate written to a temp
/// dir as PEM: the <c>trustedCa</c> of edge.json, mosquitto's cafile, or custom trust for .NET
/// clients through <see cref="ValidationCallback"/>. Nothing is added to the machine's trust store.
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private readonly ECDsa _key;
    private int _serial;

    private TestCertificateAuthority(string directory, ECDsa key, X509Certificate2 certificate)
    {
        Directory = directory;
        _key = key;
        Certificate = certificate;
        CertificatePath = Path.Combine(directory, "ca.crt");
        File.WriteAllText(CertificatePath, certificate.ExportCertificatePem());
    }

    /// <summary>The folder holding the PEM files (deleted on Dispose).</summary>
    public string Directory { get; }

    /// <summary>The CA certificate (public part only).</summary>
    public X509Certificate2 Certificate { get; }

    /// <summary>The CA certificate as a PEM file.</summary>
    public string CertificatePath { get; }

    /// <summary>Creates a CA valid from an hour ago for a day.</summary>
    public static TestCertificateAuthority Create(string commonName = "Pinhole Test CA")
    {
        var dir = System.IO.Directory.CreateTempSubdirectory("pinhole-ca-").FullName;
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={commonName}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var withKey = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        var publicOnly = X509CertificateLoader.LoadCertificate(withKey.RawData);
        return new TestCertificateAuthority(dir, key, publicOnly);
    }

    /// <summary>
    /// Issues a TLS server certificate for <paramref name="names"/> (IP addresses become IP SANs,
    /// anything else DNS SANs; the first is also the CN) and writes it with its key as PEM files.
    /// </summary>
    public TestServerCertificate IssueServerCertificate(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        if (names.Length == 0)
            names = ["127.0.0.1", "localhost"];
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={names[0]}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var name in names)
        {
            if (IPAddress.TryParse(name, out var ip))
                san.AddIpAddress(ip);
            else
                san.AddDnsName(name);
        }
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(Certificate, true, false));

        var serial = BitConverter.GetBytes(Interlocked.Increment(ref _serial) + 1000L);
        var generator = X509SignatureGenerator.CreateForECDsa(_key);
        using var issued = request.Create(Certificate.SubjectName, generator, DateTimeOffset.UtcNow.AddMinutes(-30), DateTimeOffset.UtcNow.AddHours(20), serial);
        var certificate = issued.CopyWithPrivateKey(key);

        var stem = Path.Combine(Directory, $"server{_serial}");
        File.WriteAllText(stem + ".crt", certificate.ExportCertificatePem());
        File.WriteAllText(stem + ".key", key.ExportPkcs8PrivateKeyPem());
        // Re-load through PKCS#12 so the private key is usable by SslStream on every platform.
        var usable = X509CertificateLoader.LoadPkcs12(certificate.Export(X509ContentType.Pkcs12), null);
        certificate.Dispose();
        return new TestServerCertificate(usable, stem + ".crt", stem + ".key");
    }

    /// <summary>True when <paramref name="certificate"/> chains to this CA (and to nothing else) and is valid now.</summary>
    public bool Validates(X509Certificate2 certificate)
    {
        ArgumentNullException.ThrowIfNull(certificate);
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(Certificate);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(certificate);
    }

    /// <summary>
    /// A validation callback trusting this CA only (plus the usual name check), for
    /// <c>ClientWebSocket.Options.RemoteCertificateValidationCallback</c>,
    /// <c>SocketsHttpHandler.SslOptions.RemoteCertificateValidationCallback</c> and SslStream.
    /// </summary>
    public RemoteCertificateValidationCallback ValidationCallback => (_, certificate, _, errors) =>
        certificate is X509Certificate2 cert
        && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0
        && (errors & SslPolicyErrors.RemoteCertificateNotAvailable) == 0
        && Validates(cert);

    /// <summary>Deletes the PEM files.</summary>
    public void Dispose()
    {
        _key.Dispose();
        Certificate.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
