using System.Security.Cryptography;
using Org.BouncyCastle.Asn1.Sec;
using Org.BouncyCastle.Asn1.X509;
using Org.BouncyCastle.Crypto;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Operators;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Math;
using Org.BouncyCastle.Security;
using Org.BouncyCastle.X509;

namespace Pinhole.Relay.WebRtc;

/// <summary>
/// The relay's DTLS identity: a self-signed ECDSA P-256 certificate made at start. WebRTC does not
/// use certificate chains: the browser trusts it because its SHA-256 fingerprint is in the SDP
/// answer the viewer fetched over HTTPS (RFC 8122, RFC 8827 §6.5).
/// </summary>
public sealed class DtlsCertificate
{
    private DtlsCertificate(X509CertificateStructure certificate, AsymmetricKeyParameter privateKey)
    {
        Certificate = certificate;
        PrivateKey = privateKey;
        Fingerprint = FormatFingerprint(SHA256.HashData(certificate.GetEncoded()));
    }

    /// <summary>The certificate.</summary>
    public X509CertificateStructure Certificate { get; }

    /// <summary>Its private key.</summary>
    public AsymmetricKeyParameter PrivateKey { get; }

    /// <summary>The <c>a=fingerprint</c> value: <c>sha-256 AB:CD:…</c>.</summary>
    public string Fingerprint { get; }

    /// <summary>Makes a fresh certificate valid from a day ago for 30 days.</summary>
    public static DtlsCertificate Create(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        var random = new SecureRandom();
        var generator = new ECKeyPairGenerator();
        generator.Init(new ECKeyGenerationParameters(SecObjectIdentifiers.SecP256r1, random));
        var keys = generator.GenerateKeyPair();
        var now = time.GetUtcNow().UtcDateTime;
        var builder = new X509V3CertificateGenerator();
        var name = new X509Name("CN=pinhole-relay");
        builder.SetSerialNumber(new BigInteger(64, random).Add(BigInteger.One));
        builder.SetIssuerDN(name);
        builder.SetSubjectDN(name);
        builder.SetNotBefore(now.AddDays(-1));
        builder.SetNotAfter(now.AddDays(30));
        builder.SetPublicKey(keys.Public);
        var cert = builder.Generate(new Asn1SignatureFactory("SHA256WITHECDSA", keys.Private, random));
        return new DtlsCertificate(cert.CertificateStructure, keys.Private);
    }

    /// <summary>Formats a digest as SDP wants it: upper-case hex pairs joined by colons, after <c>sha-256 </c>.</summary>
    public static string FormatFingerprint(ReadOnlySpan<byte> sha256) => "sha-256 " + Convert.ToHexString(sha256).Chunk(2).Select(c => new string(c)).Aggregate((a, b) => a + ":" + b);
}
