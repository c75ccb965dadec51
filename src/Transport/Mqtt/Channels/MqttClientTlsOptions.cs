using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;

namespace Pinhole.Transport.Mqtt.Channels;

/// <summary>TLS settings for <c>mqtts</c> over TCP and for <c>wss://</c>.</summary>
public sealed class MqttClientTlsOptions
{
    /// <summary>Whether to use TLS at all.</summary>
    public bool UseTls { get; set; }

    /// <summary>
    /// A private CA that must anchor the broker's certificate chain (edge.json <c>trustedCa</c>). When set,
    /// only this root is trusted (<see cref="X509ChainTrustMode.CustomRootTrust"/>); the host name must still
    /// match. When null, the operating system's normal validation applies.
    /// </summary>
    public X509Certificate2? TrustedCa { get; set; }

    /// <summary>Host name to validate against; defaults to the host the channel connects to.</summary>
    public string? TargetHost { get; set; }

    /// <summary>Allowed TLS versions; <see cref="SslProtocols.None"/> lets the operating system choose.</summary>
    public SslProtocols SslProtocols { get; set; } = SslProtocols.None;

    /// <summary>Loads a PEM (or DER) CA certificate file for <see cref="TrustedCa"/>.</summary>
    public static X509Certificate2 LoadTrustedCa(string path)
    {
        var text = File.ReadAllText(path);
        return text.Contains("-----BEGIN", StringComparison.Ordinal)
            ? X509Certificate2.CreateFromPem(text)
            : X509CertificateLoader.LoadCertificateFromFile(path);
    }

    /// <summary>The certificate check to give <see cref="SslStream"/> or <c>ClientWebSocket</c>; null means the default check.</summary>
    public RemoteCertificateValidationCallback? CreateValidationCallback()
    {
        var ca = TrustedCa;
        if (ca is null)
            return null;
        return (_, certificate, presentedChain, errors) =>
        {
            if (certificate is null)
                return false;
            // The name check and "no certificate" still apply; only the choice of root changes.
            if ((errors & (SslPolicyErrors.RemoteCertificateNameMismatch | SslPolicyErrors.RemoteCertificateNotAvailable)) != 0)
                return false;
            using var chain = new X509Chain();
            chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
            chain.ChainPolicy.CustomTrustStore.Add(ca);
            chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
            if (presentedChain is not null)
            {
                foreach (var element in presentedChain.ChainElements)
                    chain.ChainPolicy.ExtraStore.Add(element.Certificate);
            }

            var leaf = certificate as X509Certificate2 ?? X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
            return chain.Build(leaf);
        };
    }
}
