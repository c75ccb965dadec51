using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Security.Cryptography;

namespace Pinhole.Transport.Srtp;

/// <summary>
/// One direction of SRTP and SRTCP with the AES_CM_128_HMAC_SHA1_80 transform (RFC 3711), the
/// profile every browser offers for DTLS-SRTP. Use one instance to protect what this side sends
/// (local key) and another to unprotect what it receives (remote key); see
/// <see cref="SrtpKeyMaterial.FromDtlsExporter"/>.
/// </summary>
/// <remarks>
/// <para>Session keys are derived once with key derivation rate 0 (RFC 3711 §4.3). Each SSRC has its
/// own rollover counter, estimated from sequence numbers as §3.3.1 says, so a sender may also
/// re-protect an older packet (a NACK retransmission) and gets the same index it had.</para>
/// <para>Unprotect authenticates before it decrypts, then checks a 64-packet replay window per SSRC
/// (§3.3.2); state is only created or advanced by packets that authenticate.</para>
/// <para><c>destination</c> may be the same memory as the input (in-place). The instance is safe
/// to use from several threads; calls are serialized.</para>
/// </remarks>
public sealed class SrtpSession : IDisposable
{
    /// <summary>Length of the HMAC-SHA1-80 authentication tag.</summary>
    public const int AuthTagLength = 10;

    /// <summary>Bytes SRTCP adds: the E flag with the 31-bit SRTCP index, then the tag.</summary>
    public const int SrtcpTrailerLength = 4 + AuthTagLength;

    /// <summary>Packets behind the newest one that unprotect still accepts, once each (§3.3.2).</summary>
    public const int ReplayWindow = 64;

    /// <summary>Most SSRCs one session tracks; packets of further sources are refused.</summary>
    public const int MaxSources = 256;

    private const int SessionKeyLength = 16;
    private const int SessionSaltLength = 14;
    private const int SessionAuthKeyLength = 20;
    private const int StackLimit = 2048;

    private readonly Lock _gate = new();
    private readonly Aes _rtpCipher;
    private readonly Aes _rtcpCipher;
    private readonly byte[] _rtpSalt;
    private readonly byte[] _rtcpSalt;
    private readonly IncrementalHash _rtpAuth;
    private readonly IncrementalHash _rtcpAuth;
    private readonly Dictionary<uint, IndexState> _rtpStates = [];
    private readonly Dictionary<uint, IndexState> _rtcpStates = [];
    private readonly Dictionary<uint, uint> _srtcpSendIndex = [];
    private bool _disposed;

    /// <summary>Derives the session keys (RFC 3711 §4.3.1, labels 0–5) from a master key and salt.</summary>
    /// <param name="masterKey">16 bytes.</param>
    /// <param name="masterSalt">14 bytes.</param>
    /// <exception cref="ArgumentException">The key or salt has the wrong length.</exception>
    public SrtpSession(ReadOnlySpan<byte> masterKey, ReadOnlySpan<byte> masterSalt)
    {
        if (masterKey.Length != SrtpKeyMaterial.MasterKeyLength) throw new ArgumentException($"an AES_CM_128 master key is 16 bytes, not {masterKey.Length}", nameof(masterKey));
        if (masterSalt.Length != SrtpKeyMaterial.MasterSaltLength) throw new ArgumentException($"an SRTP master salt is 14 bytes, not {masterSalt.Length}", nameof(masterSalt));
        using var master = Aes.Create();
        master.Key = masterKey.ToArray();
        _rtpCipher = Aes.Create();
        _rtpCipher.Key = DeriveSessionKey(master, masterSalt, 0, SessionKeyLength);
        _rtpAuth = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA1, DeriveSessionKey(master, masterSalt, 1, SessionAuthKeyLength));
        _rtpSalt = DeriveSessionKey(master, masterSalt, 2, SessionSaltLength);
        _rtcpCipher = Aes.Create();
        _rtcpCipher.Key = DeriveSessionKey(master, masterSalt, 3, SessionKeyLength);
        _rtcpAuth = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA1, DeriveSessionKey(master, masterSalt, 4, SessionAuthKeyLength));
        _rtcpSalt = DeriveSessionKey(master, masterSalt, 5, SessionSaltLength);
    }

    /// <summary>
    /// The key derivation function of RFC 3711 §4.3.1 with key derivation rate 0: AES-CM under the
    /// master key, keystream from IV = (label·2^48 XOR master salt)·2^16. Exposed to the tests for
    /// the Appendix B.3 vectors.
    /// </summary>
    internal static byte[] DeriveSessionKey(Aes master, ReadOnlySpan<byte> masterSalt, byte label, int length)
    {
        Span<byte> iv = stackalloc byte[16];
        masterSalt.CopyTo(iv);
        iv[7] ^= label; // key_id = label || r (48 bits, zero at rate 0), right-aligned in the 112-bit salt
        var output = new byte[length];
        Keystream(master, iv, output);
        return output;
    }

    /// <summary>Fills <paramref name="output"/> with the AES-CM keystream from counter <paramref name="iv"/> (RFC 3711 §4.1.1).</summary>
    internal static void Keystream(Aes aes, ReadOnlySpan<byte> iv, Span<byte> output)
    {
        var blocks = (output.Length + 15) / 16;
        if (blocks > 65536) throw new ArgumentException("AES-CM keystream is limited to 2^16 blocks per packet", nameof(output));
        var size = blocks * 16;
        byte[]? rented = null;
        var buffer = size * 2 <= StackLimit ? stackalloc byte[size * 2] : (rented = ArrayPool<byte>.Shared.Rent(size * 2)).AsSpan(0, size * 2);
        try
        {
            var counters = buffer[..size];
            var stream = buffer[size..];
            for (var j = 0; j < blocks; j++)
            {
                var block = counters.Slice(16 * j, 16);
                iv.CopyTo(block);
                // The IV's low 16 bits are zero (the salt and index are shifted by 16), so adding the
                // block counter is writing it there.
                BinaryPrimitives.WriteUInt16BigEndian(block[14..], (ushort)(BinaryPrimitives.ReadUInt16BigEndian(iv[14..]) + j));
            }
            aes.EncryptEcb(counters, stream, PaddingMode.None);
            stream[..output.Length].CopyTo(output);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>XORs <paramref name="data"/> in place with the AES-CM keystream from <paramref name="iv"/>.</summary>
    private static void Crypt(Aes aes, ReadOnlySpan<byte> iv, Span<byte> data)
    {
        if (data.IsEmpty) return;
        byte[]? rented = null;
        var stream = data.Length <= StackLimit / 2 ? stackalloc byte[data.Length] : (rented = ArrayPool<byte>.Shared.Rent(data.Length)).AsSpan(0, data.Length);
        try
        {
            Keystream(aes, iv, stream);
            Xor(data, stream);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static void Xor(Span<byte> data, ReadOnlySpan<byte> stream)
    {
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= data.Length - Vector<byte>.Count; i += Vector<byte>.Count)
                (new Vector<byte>(data[i..]) ^ new Vector<byte>(stream[i..])).CopyTo(data[i..]);
        }
        for (; i < data.Length; i++) data[i] ^= stream[i];
    }

    /// <summary>The packet IV of §4.1.1: (k_s·2^16) XOR (SSRC·2^64) XOR (index·2^16).</summary>
    private static void PacketIv(ReadOnlySpan<byte> salt, uint ssrc, ulong index, Span<byte> iv)
    {
        iv.Clear();
        salt.CopyTo(iv);
        iv[4] ^= (byte)(ssrc >> 24); iv[5] ^= (byte)(ssrc >> 16); iv[6] ^= (byte)(ssrc >> 8); iv[7] ^= (byte)ssrc;
        for (var k = 0; k < 6; k++) iv[8 + k] ^= (byte)(index >> (40 - 8 * k));
    }

    /// <summary>Length of the RTP header (fixed part, CSRCs, extension), or -1 when it does not fit or is not RTP version 2.</summary>
    private static int RtpHeaderLength(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < 12 || packet[0] >> 6 != 2) return -1;
        var length = 12 + 4 * (packet[0] & 0x0F);
        if ((packet[0] & 0x10) != 0)
        {
            if (packet.Length < length + 4) return -1;
            length += 4 + 4 * BinaryPrimitives.ReadUInt16BigEndian(packet[(length + 2)..]);
        }
        return length <= packet.Length ? length : -1;
    }

    /// <summary>
    /// Encrypts the payload of <paramref name="rtp"/> and appends the 80-bit tag over header,
    /// ciphertext and rollover counter (§3.1, §4.2).
    /// </summary>
    /// <returns>The SRTP length: <c>rtp.Length + 10</c>.</returns>
    /// <exception cref="ArgumentException">Not an RTP packet, or <paramref name="destination"/> is too small.</exception>
    public int ProtectRtp(ReadOnlySpan<byte> rtp, Span<byte> destination)
    {
        var header = RtpHeaderLength(rtp);
        if (header < 0) throw new ArgumentException("not an RTP version 2 packet with a whole header", nameof(rtp));
        var length = rtp.Length + AuthTagLength;
        if (destination.Length < length) throw new ArgumentException($"destination needs {length} bytes", nameof(destination));
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(rtp[8..]);
        var sequence = BinaryPrimitives.ReadUInt16BigEndian(rtp[2..]);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ulong index;
            if (_rtpStates.TryGetValue(ssrc, out var state))
            {
                // A packet older than the first one sent (index below zero) keeps rollover counter 0.
                index = EstimateIndex(state.Highest, sequence) is { } estimate and >= 0 ? (ulong)estimate : sequence;
                if (index > state.Highest) state.Highest = index;
            }
            else
            {
                if (_rtpStates.Count >= MaxSources) throw new InvalidOperationException($"an SRTP session protects at most {MaxSources} sources");
                _rtpStates[ssrc] = new IndexState { Highest = sequence };
                index = sequence;
            }
            rtp.CopyTo(destination);
            Span<byte> iv = stackalloc byte[16];
            PacketIv(_rtpSalt, ssrc, index, iv);
            Crypt(_rtpCipher, iv, destination[header..rtp.Length]);
            WriteTag(_rtpAuth, destination[..rtp.Length], (uint)(index >> 16), destination.Slice(rtp.Length, AuthTagLength));
        }
        return length;
    }

    /// <summary>
    /// Authenticates <paramref name="srtp"/>, refuses replays and packets too old for the window,
    /// then decrypts it into <paramref name="destination"/>.
    /// </summary>
    /// <returns>False (and <paramref name="length"/> 0) for a bad tag, a replay, a malformed packet or a too-small destination.</returns>
    public bool TryUnprotectRtp(ReadOnlySpan<byte> srtp, Span<byte> destination, out int length)
    {
        length = 0;
        var header = RtpHeaderLength(srtp);
        if (header < 0 || srtp.Length < header + AuthTagLength) return false;
        var rtpLength = srtp.Length - AuthTagLength;
        if (destination.Length < rtpLength) return false;
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(srtp[8..]);
        var sequence = BinaryPrimitives.ReadUInt16BigEndian(srtp[2..]);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var known = _rtpStates.TryGetValue(ssrc, out var state);
            if (!known && _rtpStates.Count >= MaxSources) return false;
            // §3.3.1: the first packet of a source sets s_l; its rollover counter is 0.
            long estimate = known ? EstimateIndex(state!.Highest, sequence) : sequence;
            if (estimate < 0) return false;
            var index = (ulong)estimate;
            if (known && !state!.MayAccept(index)) return false;
            Span<byte> tag = stackalloc byte[AuthTagLength];
            WriteTag(_rtpAuth, srtp[..rtpLength], (uint)(index >> 16), tag);
            if (!CryptographicOperations.FixedTimeEquals(tag, srtp[rtpLength..])) return false;
            if (!known) _rtpStates[ssrc] = state = new IndexState { Highest = index };
            state!.Accept(index);
            srtp[..rtpLength].CopyTo(destination);
            Span<byte> iv = stackalloc byte[16];
            PacketIv(_rtpSalt, ssrc, index, iv);
            Crypt(_rtpCipher, iv, destination[header..rtpLength]);
        }
        length = rtpLength;
        return true;
    }

    /// <summary>
    /// Encrypts an RTCP compound packet after its first 8 bytes, appends E=1 with this SSRC's next
    /// SRTCP index (starting at 0) and the tag (§3.4).
    /// </summary>
    /// <returns>The SRTCP length: <c>rtcp.Length + 14</c>.</returns>
    /// <exception cref="ArgumentException">Not an RTCP packet (version 2, at least 8 bytes), or <paramref name="destination"/> is too small.</exception>
    public int ProtectRtcp(ReadOnlySpan<byte> rtcp, Span<byte> destination)
    {
        if (rtcp.Length < 8 || rtcp[0] >> 6 != 2) throw new ArgumentException("not an RTCP version 2 packet of at least 8 bytes", nameof(rtcp));
        var length = rtcp.Length + SrtcpTrailerLength;
        if (destination.Length < length) throw new ArgumentException($"destination needs {length} bytes", nameof(destination));
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(rtcp[4..]);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_srtcpSendIndex.TryGetValue(ssrc, out var index) && _srtcpSendIndex.Count >= MaxSources)
                throw new InvalidOperationException($"an SRTP session protects at most {MaxSources} sources");
            _srtcpSendIndex[ssrc] = (index + 1) & 0x7FFFFFFF;
            rtcp.CopyTo(destination);
            Span<byte> iv = stackalloc byte[16];
            PacketIv(_rtcpSalt, ssrc, index, iv);
            Crypt(_rtcpCipher, iv, destination[8..rtcp.Length]);
            BinaryPrimitives.WriteUInt32BigEndian(destination[rtcp.Length..], 0x80000000u | index);
            WriteTag(_rtcpAuth, destination[..(rtcp.Length + 4)], null, destination.Slice(rtcp.Length + 4, AuthTagLength));
        }
        return length;
    }

    /// <summary>
    /// Authenticates <paramref name="srtcp"/> (tag over packet, E flag and index), refuses replays,
    /// then decrypts it (when E is set) into <paramref name="destination"/>.
    /// </summary>
    /// <returns>False (and <paramref name="length"/> 0) for a bad tag, a replay, a malformed packet or a too-small destination.</returns>
    public bool TryUnprotectRtcp(ReadOnlySpan<byte> srtcp, Span<byte> destination, out int length)
    {
        length = 0;
        if (srtcp.Length < 8 + SrtcpTrailerLength || srtcp[0] >> 6 != 2) return false;
        var rtcpLength = srtcp.Length - SrtcpTrailerLength;
        if (destination.Length < rtcpLength) return false;
        var ssrc = BinaryPrimitives.ReadUInt32BigEndian(srtcp[4..]);
        var word = BinaryPrimitives.ReadUInt32BigEndian(srtcp[rtcpLength..]);
        var encrypted = (word & 0x80000000u) != 0;
        ulong index = word & 0x7FFFFFFFu;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var known = _rtcpStates.TryGetValue(ssrc, out var state);
            if (!known && _rtcpStates.Count >= MaxSources) return false;
            if (known && !state!.MayAccept(index)) return false;
            Span<byte> tag = stackalloc byte[AuthTagLength];
            WriteTag(_rtcpAuth, srtcp[..(rtcpLength + 4)], null, tag);
            if (!CryptographicOperations.FixedTimeEquals(tag, srtcp[(rtcpLength + 4)..])) return false;
            if (!known) _rtcpStates[ssrc] = state = new IndexState { Highest = index };
            state!.Accept(index);
            srtcp[..rtcpLength].CopyTo(destination);
            if (encrypted)
            {
                Span<byte> iv = stackalloc byte[16];
                PacketIv(_rtcpSalt, ssrc, index, iv);
                Crypt(_rtcpCipher, iv, destination[8..rtcpLength]);
            }
        }
        length = rtcpLength;
        return true;
    }

    /// <summary>HMAC-SHA1 over <paramref name="authenticated"/> (then the ROC for SRTP), truncated to 80 bits (§4.2).</summary>
    private static void WriteTag(IncrementalHash hmac, ReadOnlySpan<byte> authenticated, uint? rolloverCounter, Span<byte> tag)
    {
        hmac.AppendData(authenticated);
        if (rolloverCounter is { } roc)
        {
            Span<byte> rocBytes = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(rocBytes, roc);
            hmac.AppendData(rocBytes);
        }
        Span<byte> mac = stackalloc byte[20];
        hmac.GetHashAndReset(mac);
        mac[..AuthTagLength].CopyTo(tag);
    }

    /// <summary>
    /// The packet index estimate of RFC 3711 §3.3.1 from the highest index so far (ROC and s_l) and
    /// the packet's sequence number; negative for a packet from before index 0.
    /// </summary>
    internal static long EstimateIndex(ulong highest, ushort sequence)
    {
        var roc = (long)(highest >> 16);
        var sl = (int)(highest & 0xFFFF);
        long v;
        if (sl < 32768) v = sequence - sl > 32768 ? roc - 1 : roc;
        else v = sl - 32768 > sequence ? roc + 1 : roc;
        return v < 0 ? -1 : (v << 16) | sequence;
    }

    /// <summary>Releases the ciphers and HMACs; later calls throw <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _rtpCipher.Dispose();
            _rtcpCipher.Dispose();
            _rtpAuth.Dispose();
            _rtcpAuth.Dispose();
        }
    }

    /// <summary>Highest index seen from one source and the replay bitmap behind it (bit k: index Highest − k seen).</summary>
    private sealed class IndexState
    {
        public ulong Highest;
        public ulong Seen = 1;

        public bool MayAccept(ulong index)
        {
            if (index > Highest) return true;
            var behind = Highest - index;
            return behind < ReplayWindow && (Seen & (1UL << (int)behind)) == 0;
        }

        public void Accept(ulong index)
        {
            if (index > Highest)
            {
                var ahead = index - Highest;
                Seen = ahead >= ReplayWindow ? 1 : (Seen << (int)ahead) | 1;
                Highest = index;
            }
            else
            {
                Seen |= 1UL << (int)(Highest - index);
            }
        }
    }
}
