using System.Security.Cryptography.X509Certificates;
using Pinhole.Testing;

namespace Pinhole.Harness.Tests;

public class TestCertificateAuthorityTests
{
    [Fact]
    public void Issued_certificate_chains_to_its_ca_only_and_its_pem_files_load_with_the_key()
    {
        using var ca = TestCertificateAuthority.Create();
        using var other = TestCertificateAuthority.Create("Other CA");
        var server = ca.IssueServerCertificate("10.200.0.10", "relay.test");

        Assert.True(ca.Validates(server.Certificate));
        Assert.False(other.Validates(server.Certificate));
        Assert.True(server.Certificate.HasPrivateKey);

        using var fromPem = X509Certificate2.CreateFromPemFile(server.CertificatePath, server.KeyPath);
        Assert.True(fromPem.HasPrivateKey);
        Assert.Equal(server.Certificate.Thumbprint, fromPem.Thumbprint);
        Assert.True(fromPem.MatchesHostname("10.200.0.10"));
        Assert.True(fromPem.MatchesHostname("relay.test"));
        Assert.False(fromPem.MatchesHostname("127.0.0.1"));

        using var caPem = X509Certificate2.CreateFromPem(File.ReadAllText(ca.CertificatePath));
        Assert.Equal(ca.Certificate.Thumbprint, caPem.Thumbprint);
        server.Certificate.Dispose();
    }

    [Fact]
    public void Dispose_deletes_the_pem_files()
    {
        var ca = TestCertificateAuthority.Create();
        ca.IssueServerCertificate().Certificate.Dispose();
        Assert.True(File.Exists(ca.CertificatePath));
        ca.Dispose();
        Assert.False(Directory.Exists(ca.Directory));
    }
}
