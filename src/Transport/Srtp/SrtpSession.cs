namespace Pinhole.Transport.Srtp;

/// <summary>
/// One direction of SRTP/SRTCP with AES_CM_128_HMAC_SHA1_80 (RFC 3711). Placeholder: the
/// implementation lands in the next commit.
/// </summary>
public sealed class SrtpSession : IDisposable
{
    /// <summary>Length of the HMAC-SHA1-80 authentication tag.</summary>
    public const int AuthTagLength = 10;

    /// <summary>Bytes SRTCP adds: the E flag and 31-bit index, then the tag.</summary>
    public const int SrtcpTrailerLength = 4 + AuthTagLength;

    /// <summary>Derives the session keys from a master key (16 bytes) and salt (14 bytes).</summary>
    public SrtpSession(ReadOnlySpan<byte> masterKey, ReadOnlySpan<byte> masterSalt)
    {
        _ = masterKey.Length + masterSalt.Length;
        throw new NotImplementedException();
    }

    /// <summary>Encrypts and authenticates an RTP packet into <paramref name="destination"/>; returns its length (rtp + 10).</summary>
    public int ProtectRtp(ReadOnlySpan<byte> rtp, Span<byte> destination) => throw new NotImplementedException();

    /// <summary>Checks and decrypts an SRTP packet; false when it fails authentication, is a replay or is malformed.</summary>
    public bool TryUnprotectRtp(ReadOnlySpan<byte> srtp, Span<byte> destination, out int length) => throw new NotImplementedException();

    /// <summary>Encrypts and authenticates an RTCP compound packet; returns its length (rtcp + 14).</summary>
    public int ProtectRtcp(ReadOnlySpan<byte> rtcp, Span<byte> destination) => throw new NotImplementedException();

    /// <summary>Checks and decrypts an SRTCP packet; false when it fails authentication, is a replay or is malformed.</summary>
    public bool TryUnprotectRtcp(ReadOnlySpan<byte> srtcp, Span<byte> destination, out int length) => throw new NotImplementedException();

    /// <summary>Releases the AES and HMAC instances.</summary>
    public void Dispose() { }
}
