using System.Security.Cryptography;
using Org.BouncyCastle.Tls;
using HashAlgorithm = Org.BouncyCastle.Tls.HashAlgorithm;
using Org.BouncyCastle.Tls.Crypto;
using Org.BouncyCastle.Tls.Crypto.Impl.BC;
using Pinhole.Transport.Srtp;

namespace Pinhole.Relay.WebRtc;

/// <summary>
/// The relay's side of DTLS-SRTP (RFC 5764) with BouncyCastle: DTLS 1.2 only, ECDSA certificate,
/// the <c>use_srtp</c> extension with SRTP_AES128_CM_HMAC_SHA1_80, a client certificate required and
/// checked against the <c>a=fingerprint</c> of the browser's offer, and the SRTP keys exported with
/// the label <c>EXTRACTOR-dtls_srtp</c> once the handshake completes.
/// </summary>
internal sealed class DtlsSrtpServer : DefaultTlsServer
{
    private readonly DtlsCertificate _identity;
    private readonly IReadOnlyList<(string Algorithm, byte[] Digest)> _expectedPeer;
    private int[] _srtpProfiles = [];

    public DtlsSrtpServer(BcTlsCrypto crypto, DtlsCertificate identity, IReadOnlyList<(string Algorithm, byte[] Digest)> expectedPeerFingerprints)
        : base(crypto)
    {
        _identity = identity;
        _expectedPeer = expectedPeerFingerprints;
    }

    /// <summary>The 60 bytes exported after the handshake; null before.</summary>
    public byte[]? KeyingMaterial { get; private set; }

    /// <summary>Why the handshake was refused, when it was refused by us.</summary>
    public string? Refusal { get; private set; }

    protected override ProtocolVersion[] GetSupportedVersions() => ProtocolVersion.DTLSv12.Only();

    protected override int[] GetSupportedCipherSuites() =>
    [
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
        CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
    ];

    public override int GetHandshakeTimeoutMillis() => 15_000;

    protected override TlsCredentialedSigner GetECDsaSignerCredentials()
    {
        var crypto = (BcTlsCrypto)Crypto;
        var certificate = new Certificate([new BcTlsCertificate(crypto, _identity.Certificate)]);
        return new BcDefaultTlsCredentialedSigner(new TlsCryptoParameters(m_context), crypto, _identity.PrivateKey, certificate,
            SignatureAndHashAlgorithm.GetInstance(HashAlgorithm.sha256, SignatureAlgorithm.ecdsa));
    }

    public override void ProcessClientExtensions(IDictionary<int, byte[]> clientExtensions)
    {
        base.ProcessClientExtensions(clientExtensions);
        var offered = TlsSrtpUtilities.GetUseSrtpExtension(clientExtensions);
        if (offered is null || !offered.ProtectionProfiles.Contains(SrtpProtectionProfile.SRTP_AES128_CM_HMAC_SHA1_80))
        {
            Refusal = "the client did not offer use_srtp with SRTP_AES128_CM_HMAC_SHA1_80";
            throw new TlsFatalAlert(AlertDescription.handshake_failure);
        }
        _srtpProfiles = [SrtpProtectionProfile.SRTP_AES128_CM_HMAC_SHA1_80];
    }

    public override IDictionary<int, byte[]> GetServerExtensions()
    {
        var extensions = base.GetServerExtensions() ?? new Dictionary<int, byte[]>();
        TlsSrtpUtilities.AddUseSrtpExtension(extensions, new UseSrtpData(_srtpProfiles, []));
        return extensions;
    }

    public override CertificateRequest GetCertificateRequest()
    {
        // RFC 8827 §6.5: both ends present certificates; the browser's is checked against its SDP fingerprint.
        var algorithms = new List<SignatureAndHashAlgorithm>
        {
            SignatureAndHashAlgorithm.GetInstance(HashAlgorithm.sha256, SignatureAlgorithm.ecdsa),
            SignatureAndHashAlgorithm.GetInstance(HashAlgorithm.sha384, SignatureAlgorithm.ecdsa),
            SignatureAndHashAlgorithm.GetInstance(HashAlgorithm.sha256, SignatureAlgorithm.rsa),
            SignatureAndHashAlgorithm.rsa_pss_rsae_sha256,
            SignatureAndHashAlgorithm.GetInstance(HashAlgorithm.sha1, SignatureAlgorithm.ecdsa),
            SignatureAndHashAlgorithm.GetInstance(HashAlgorithm.sha1, SignatureAlgorithm.rsa),
        };
        return new CertificateRequest([ClientCertificateType.ecdsa_sign, ClientCertificateType.rsa_sign], algorithms, null);
    }

    public override void NotifyClientCertificate(Certificate clientCertificate)
    {
        if (clientCertificate is null || clientCertificate.IsEmpty)
        {
            Refusal = "the browser sent no certificate";
            throw new TlsFatalAlert(AlertDescription.bad_certificate);
        }
        var der = clientCertificate.GetCertificateAt(0).GetEncoded();
        foreach (var (algorithm, digest) in _expectedPeer)
        {
            var actual = algorithm switch
            {
                "sha-256" => SHA256.HashData(der),
                "sha-384" => SHA384.HashData(der),
                "sha-512" => SHA512.HashData(der),
                "sha-1" => SHA1.HashData(der),
                _ => null,
            };
            if (actual is not null && CryptographicOperations.FixedTimeEquals(actual, digest)) return;
        }
        Refusal = "the browser's certificate does not match the a=fingerprint of its offer";
        throw new TlsFatalAlert(AlertDescription.bad_certificate);
    }

    public override void NotifyHandshakeComplete()
    {
        base.NotifyHandshakeComplete();
        KeyingMaterial = m_context.ExportKeyingMaterial(ExporterLabel.dtls_srtp, null, SrtpKeyMaterial.ExportedLength);
    }
}
