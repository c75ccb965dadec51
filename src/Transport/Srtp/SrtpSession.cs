using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Pinhole.Transport.Srtp;

/// <summary>
/// One direction of SRTP/SRTCP with AES_CM_128_HMAC_SHA1_80 (RFC 3711): session keys derived with
/// KDR 0 (§4.3), AES counter mode (§4.1.1), HMAC-SHA1 tags cut to 80 bits (§4.2). Tracks the
/// rollover counter of each SSRC from its sequence numbers and keeps a replay window when
/// unprotecting. Not thread-safe.
/// </summary>
public sealed class SrtpSession : IDisposable
{
    /// <summary>Length of the authentication tag.</summary>
    public const int TagLength = 10;

    /// <summary>Bytes SRTCP adds: the E flag and index, then the tag.</summary>
    public const int RtcpOverhead = 4 + TagLength;

    private readonly Aes _rtpAes = Aes.Create();
    private readonly Aes _rtcpAes = Aes.Create();
    private readonly byte[] _rtpAuth;
    private readonly byte[] _rtpSalt;
    private readonly byte[] _rtcpAuth;
    private readonly byte[] _rtcpSalt;
    private readonly Dictionary<uint, SsrcState> _send = [];
    private readonly Dictionary<uint, SsrcState> _receive = [];
    private readonly Dictionary<uint, ReplayWindow> _rtcpReplay = [];
    private uint _rtcpIndex;

    /// <summary>Derives the session keys from a master key (16 bytes) and salt (14 bytes).</summary>
    public SrtpSession(ReadOnlySpan<byte> masterKey, ReadOnlySpan<byte> masterSalt)
    {
        if (masterKey.Length != 16) throw new ArgumentException("master key must be 16 bytes", nameof(masterKey));
        if (masterSalt.Length != 14) throw new ArgumentException("master salt must be 14 bytes", nameof(masterSalt));
        _rtpAes.Key = Derive(masterKey, masterSalt, 0, 16);
        _rtpAuth = Derive(masterKey, masterSalt, 1, 20);
        _rtpSalt = Derive(masterKey, masterSalt, 2, 14);
        _rtcpAes.Key = Derive(masterKey, masterSalt, 3, 16);
        _rtcpAuth = Derive(masterKey, masterSalt, 4, 20);
        _rtcpSalt = Derive(masterKey, masterSalt, 5, 14);
    }

    /// <summary>RFC 3711 §4.3.1 with key_derivation_rate 0: x = label at octet 7 xor salt, keystream of AES-CM(master key, x * 2^16).</summary>
    internal static byte[] Derive(ReadOnlySpan<byte> masterKey, ReadOnlySpan<byte> masterSalt, byte label, int length)
    {
        using var aes = Aes.Create();
        aes.Key = masterKey.ToArray();
        Span<byte> iv = stackalloc byte[16];
        masterSalt.CopyTo(iv);
        iv[7] ^= label;
        var output = new byte[length];
        Keystream(aes, iv, output);
        return output;
    }

    // AES counter mode: blocks IV, IV+1, … (the counter is the low 16 bits) encrypted and xored in.
    private static void Keystream(Aes aes, ReadOnlySpan<byte> iv, Span<byte> data)
    {
        var blocks = (data.Length + 15) / 16;
        var counters = new byte[blocks * 16];
        for (var i = 0; i < blocks; i++)
        {
            var block = counters.AsSpan(i * 16, 16);
            iv.CopyTo(block);
            var c = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(block[14..]) + i);
            BinaryPrimitives.WriteUInt16BigEndian(block[14..], c);
        }
        var stream = aes.EncryptEcb(counters, PaddingMode.None);
        for (var i = 0; i < data.Length; i++) data[i] ^= stream[i];
    }

    private static void PacketIv(ReadOnlySpan<byte> salt, uint ssrc, ulong index, Span<byte> iv)
    {
        iv.Clear();
        salt.CopyTo(iv);
        Span<byte> t = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(t, ssrc);
        for (var i = 0; i < 4; i++) iv[4 + i] ^= t[i];
        Span<byte> x = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(x, index);
        for (var i = 0; i < 6; i++) iv[8 + i] ^= x[2 + i];
    }

    private static int RtpHeaderLength(ReadOnlySpan<byte> rtp)
    {
        if (rtp.Length < 12 || rtp[0] >> 6 != 2) return -1;
        var length = 12 + 4 * (rtp[0] & 0x0F);
        if ((rtp[0] & 0x10) != 0)
        {
            if (rtp.Length < length + 4) return -1;
            length += 4 + 4 * BinaryPrimitives.ReadUInt16BigEndian(rtp[(length + 2)..]);
        }
        return length <= rtp.Length ? length : -1;
    }

    /// <summary>Encrypts and authenticates one RTP packet into <paramref name="destination"/> (at least <c>rtp.Length + 10</c>); returns its length.</summary>
    public int ProtectRtp(ReadOnlySpan<byte> rtp, Span<byte> destination)
    {
        var header = RtpHeaderLength(rtp);
        if (header < 0) throw new ArgumentException("not an RTP packet", nameof(rtp));
        if (destination.Length < rtp.Length + TagLength) throw new ArgumentException("destination too small", nameof(destination));
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(rtp[8..]);
        var seq = BinaryPrimitives.ReadUInt16BigEndian(rtp[2..]);
        if (!_send.TryGetValue(ssrc, out var state)) _send[ssrc] = state = new SsrcState { LastSeq = seq };
        // A sender's sequence only goes forward: a much smaller number means it wrapped (RFC 3711 §3.3.1).
        if (seq < state.LastSeq && state.LastSeq - seq > 0x8000) state.Roc++;
        state.LastSeq = seq;
        var index = ((ulong)state.Roc << 16) | seq;
        rtp.CopyTo(destination);
        Span<byte> iv = stackalloc byte[16];
        PacketIv(_rtpSalt, ssrc, index, iv);
        Keystream(_rtpAes, iv, destination[header..rtp.Length]);
        Tag(_rtpAuth, destination[..rtp.Length], state.Roc, destination.Slice(rtp.Length, TagLength));
        return rtp.Length + TagLength;
    }

    private static void Tag(byte[] key, ReadOnlySpan<byte> authenticated, uint roc, Span<byte> tag)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA1, key);
        hmac.AppendData(authenticated);
        Span<byte> r = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(r, roc);
        hmac.AppendData(r);
        Span<byte> mac = stackalloc byte[20];
        hmac.GetHashAndReset(mac);
        mac[..TagLength].CopyTo(tag);
    }

    /// <summary>Checks and decrypts one SRTP packet; false when the tag is wrong, it is a replay or not SRTP.</summary>
    public bool TryUnprotectRtp(ReadOnlySpan<byte> srtp, Span<byte> destination, out int length)
    {
        length = 0;
        if (srtp.Length < 12 + TagLength) return false;
        var rtp = srtp[..^TagLength];
        var header = RtpHeaderLength(rtp);
        if (header < 0 || destination.Length < rtp.Length) return false;
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(rtp[8..]);
        var seq = BinaryPrimitives.ReadUInt16BigEndian(rtp[2..]);
        var known = _receive.TryGetValue(ssrc, out var state);
        state ??= new SsrcState { LastSeq = seq };
        // RFC 3711 Appendix A: guess the ROC from the highest sequence seen.
        var roc = state.Roc;
        if (known)
        {
            if (state.LastSeq < 0x8000) { if (seq - state.LastSeq > 0x8000) roc--; }
            else if (state.LastSeq - 0x8000 > seq) roc++;
        }
        var index = ((ulong)roc << 16) | seq;
        if (known && !state.Window.Check(index)) return false;
        Span<byte> tag = stackalloc byte[TagLength];
        Tag(_rtpAuth, rtp, roc, tag);
        if (!CryptographicOperations.FixedTimeEquals(tag, srtp[^TagLength..])) return false;
        rtp.CopyTo(destination);
        Span<byte> iv = stackalloc byte[16];
        PacketIv(_rtpSalt, ssrc, index, iv);
        Keystream(_rtpAes, iv, destination[header..rtp.Length]);
        if (!known) _receive[ssrc] = state;
        state.Window.Accept(index);
        if (roc > state.Roc || (roc == state.Roc && seq > state.LastSeq)) { state.Roc = roc; state.LastSeq = seq; }
        length = rtp.Length;
        return true;
    }

    /// <summary>Encrypts and authenticates one (compound) RTCP packet; returns its length (<c>rtcp.Length + 14</c>).</summary>
    public int ProtectRtcp(ReadOnlySpan<byte> rtcp, Span<byte> destination)
    {
        if (rtcp.Length < 8) throw new ArgumentException("not an RTCP packet", nameof(rtcp));
        if (destination.Length < rtcp.Length + RtcpOverhead) throw new ArgumentException("destination too small", nameof(destination));
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(rtcp[4..]);
        var index = _rtcpIndex;
        _rtcpIndex = (_rtcpIndex + 1) & 0x7FFFFFFF;
        rtcp.CopyTo(destination);
        Span<byte> iv = stackalloc byte[16];
        PacketIv(_rtcpSalt, ssrc, index, iv);
        Keystream(_rtcpAes, iv, destination[8..rtcp.Length]);
        BinaryPrimitives.WriteUInt32BigEndian(destination[rtcp.Length..], 0x80000000u | index);
        RtcpTag(destination[..(rtcp.Length + 4)], destination.Slice(rtcp.Length + 4, TagLength));
        return rtcp.Length + RtcpOverhead;
    }

    private void RtcpTag(ReadOnlySpan<byte> authenticated, Span<byte> tag)
    {
        Span<byte> mac = stackalloc byte[20];
        HMACSHA1.HashData(_rtcpAuth, authenticated, mac);
        mac[..TagLength].CopyTo(tag);
    }

    /// <summary>Checks and decrypts one SRTCP packet; false when the tag is wrong, it is a replay or too short.</summary>
    public bool TryUnprotectRtcp(ReadOnlySpan<byte> srtcp, Span<byte> destination, out int length)
    {
        length = 0;
        if (srtcp.Length < 8 + RtcpOverhead) return false;
        var body = srtcp[..^RtcpOverhead];
        if (destination.Length < body.Length) return false;
        Span<byte> tag = stackalloc byte[TagLength];
        RtcpTag(srtcp[..^TagLength], tag);
        if (!CryptographicOperations.FixedTimeEquals(tag, srtcp[^TagLength..])) return false;
        var word = BinaryPrimitives.ReadUInt32BigEndian(srtcp[^RtcpOverhead..]);
        var index = word & 0x7FFFFFFF;
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
        if (!_rtcpReplay.TryGetValue(ssrc, out var window)) _rtcpReplay[ssrc] = window = new ReplayWindow();
        if (!window.Check(index)) return false;
        body.CopyTo(destination);
        if ((word & 0x80000000) != 0)
        {
            Span<byte> iv = stackalloc byte[16];
            PacketIv(_rtcpSalt, ssrc, index, iv);
            Keystream(_rtcpAes, iv, destination[8..body.Length]);
        }
        window.Accept(index);
        length = body.Length;
        return true;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _rtpAes.Dispose();
        _rtcpAes.Dispose();
    }

    private sealed class SsrcState
    {
        public uint Roc;
        public ushort LastSeq;
        public readonly ReplayWindow Window = new();
    }

    // RFC 3711 §3.3.2: a 64-packet sliding window behind the highest index accepted.
    private sealed class ReplayWindow
    {
        private ulong _highest;
        private ulong _bits;
        private bool _any;

        public bool Check(ulong index)
        {
            if (!_any || index > _highest) return true;
            var delta = _highest - index;
            return delta < 64 && (_bits & (1UL << (int)delta)) == 0;
        }

        public void Accept(ulong index)
        {
            if (!_any) { _any = true; _highest = index; _bits = 1; return; }
            if (index > _highest)
            {
                var shift = index - _highest;
                _bits = shift >= 64 ? 1 : (_bits << (int)shift) | 1;
                _highest = index;
            }
            else _bits |= 1UL << (int)(_highest - index);
        }
    }
}
