namespace Pinhole.Transport.Srtp;

/// <summary>
/// Splits the keying material DTLS exports for SRTP_AES128_CM_HMAC_SHA1_80 (RFC 5764 §4.2) into
/// the master keys and salts of the two directions.
/// </summary>
public static class SrtpKeyMaterial
{
    /// <summary>The TLS exporter label for DTLS-SRTP (RFC 5764 §4.2).</summary>
    public const string ExporterLabel = "EXTRACTOR-dtls_srtp";

    /// <summary>Master key length of AES_CM_128 (RFC 3711 §8.2).</summary>
    public const int MasterKeyLength = 16;

    /// <summary>Master salt length of AES_CM_128 (RFC 3711 §8.2).</summary>
    public const int MasterSaltLength = 14;

    /// <summary>Bytes to export: 2 × (16 + 14).</summary>
    public const int ExportedLength = 2 * (MasterKeyLength + MasterSaltLength);

    /// <summary>
    /// Splits <paramref name="exported"/> (60 bytes, laid out client key, server key, client salt,
    /// server salt) into what this side protects with (local) and unprotects with (remote).
    /// </summary>
    /// <param name="exported">The exporter output for <see cref="ExporterLabel"/>, no context, 60 bytes.</param>
    /// <param name="weAreDtlsServer">True when this side was the DTLS server (the relay: a=setup:passive).</param>
    /// <exception cref="ArgumentException">The input is not 60 bytes.</exception>
    public static (byte[] LocalKey, byte[] LocalSalt, byte[] RemoteKey, byte[] RemoteSalt) FromDtlsExporter(ReadOnlySpan<byte> exported, bool weAreDtlsServer)
    {
        if (exported.Length != ExportedLength) throw new ArgumentException($"DTLS-SRTP keying material is {ExportedLength} bytes, not {exported.Length}", nameof(exported));
        var clientKey = exported[..MasterKeyLength].ToArray();
        var serverKey = exported.Slice(MasterKeyLength, MasterKeyLength).ToArray();
        var clientSalt = exported.Slice(2 * MasterKeyLength, MasterSaltLength).ToArray();
        var serverSalt = exported.Slice(2 * MasterKeyLength + MasterSaltLength, MasterSaltLength).ToArray();
        return weAreDtlsServer ? (serverKey, serverSalt, clientKey, clientSalt) : (clientKey, clientSalt, serverKey, serverSalt);
    }
}
