namespace Pinhole.Transport.Srtp;

/// <summary>SRTP master keys from a DTLS-SRTP handshake (RFC 5764 §4.2).</summary>
public static class SrtpKeyMaterial
{
    /// <summary>Master key length of SRTP_AES128_CM_HMAC_SHA1_80.</summary>
    public const int KeyLength = 16;

    /// <summary>Master salt length of SRTP_AES128_CM_HMAC_SHA1_80.</summary>
    public const int SaltLength = 14;

    /// <summary>Bytes to export with the label <c>EXTRACTOR-dtls_srtp</c>: 2 * (16 + 14).</summary>
    public const int ExportLength = 2 * (KeyLength + SaltLength);

    /// <summary>Splits the exported block (client key, server key, client salt, server salt) into ours and the peer's.</summary>
    public static (byte[] LocalKey, byte[] LocalSalt, byte[] RemoteKey, byte[] RemoteSalt) FromDtlsExporter(ReadOnlySpan<byte> exported, bool weAreDtlsServer)
    {
        if (exported.Length != ExportLength) throw new ArgumentException($"DTLS-SRTP export must be {ExportLength} bytes", nameof(exported));
        var clientKey = exported[..KeyLength].ToArray();
        var serverKey = exported.Slice(KeyLength, KeyLength).ToArray();
        var clientSalt = exported.Slice(2 * KeyLength, SaltLength).ToArray();
        var serverSalt = exported.Slice(2 * KeyLength + SaltLength, SaltLength).ToArray();
        return weAreDtlsServer ? (serverKey, serverSalt, clientKey, clientSalt) : (clientKey, clientSalt, serverKey, serverSalt);
    }
}
