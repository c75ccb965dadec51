using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Pinhole.Transport.Stun;

/// <summary>The class of a STUN message (RFC 8489 §5).</summary>
public enum StunClass
{
    /// <summary>A request: expects a response.</summary>
    Request = 0,

    /// <summary>An indication: no response.</summary>
    Indication = 1,

    /// <summary>A success response.</summary>
    SuccessResponse = 2,

    /// <summary>An error response.</summary>
    ErrorResponse = 3,
}

/// <summary>STUN methods used here.</summary>
public static class StunMethods
{
    /// <summary>Binding (RFC 8489 §18.1), the only method ICE uses.</summary>
    public const ushort Binding = 1;
}

/// <summary>An attribute this parser does not model, kept as it came.</summary>
/// <param name="Type">The attribute type.</param>
/// <param name="Value">The value bytes (without padding).</param>
public sealed record StunRawAttribute(ushort Type, byte[] Value);

/// <summary>
/// A STUN message (RFC 8489) with the attributes ICE needs (RFC 8445 §7.1): USERNAME,
/// XOR-MAPPED-ADDRESS, PRIORITY, USE-CANDIDATE, ICE-CONTROLLING/CONTROLLED and ERROR-CODE.
/// Pure: bytes in, message out; MESSAGE-INTEGRITY and FINGERPRINT are checked on the raw datagram.
/// </summary>
public sealed class StunMessage
{
    /// <summary>The fixed header length.</summary>
    public const int HeaderLength = 20;

    /// <summary>The magic cookie (RFC 8489 §5).</summary>
    public const uint MagicCookie = 0x2112A442;

    /// <summary>Largest message accepted (a STUN message must fit one UDP datagram).</summary>
    public const int MaxLength = 1500;

    private const ushort AttrUsername = 0x0006;
    private const ushort AttrMessageIntegrity = 0x0008;
    private const ushort AttrErrorCode = 0x0009;
    private const ushort AttrXorMappedAddress = 0x0020;
    private const ushort AttrPriority = 0x0024;
    private const ushort AttrUseCandidate = 0x0025;
    private const ushort AttrFingerprint = 0x8028;
    private const ushort AttrIceControlled = 0x8029;
    private const ushort AttrIceControlling = 0x802A;
    private const uint FingerprintXor = 0x5354554e;

    /// <summary>Request, indication, success or error response.</summary>
    public StunClass Class { get; set; }

    /// <summary>The method (<see cref="StunMethods.Binding"/>).</summary>
    public ushort Method { get; set; } = StunMethods.Binding;

    /// <summary>The 96-bit transaction id.</summary>
    public byte[] TransactionId { get; set; } = new byte[12];

    /// <summary>USERNAME (ICE: <c>RECEIVER-UFRAG:SENDER-UFRAG</c>).</summary>
    public string? Username { get; set; }

    /// <summary>XOR-MAPPED-ADDRESS: where the request came from, as the responder saw it.</summary>
    public IPEndPoint? XorMappedAddress { get; set; }

    /// <summary>PRIORITY (RFC 8445 §7.1.1).</summary>
    public uint? Priority { get; set; }

    /// <summary>ICE-CONTROLLING tie-breaker.</summary>
    public ulong? IceControlling { get; set; }

    /// <summary>ICE-CONTROLLED tie-breaker.</summary>
    public ulong? IceControlled { get; set; }

    /// <summary>USE-CANDIDATE: the controlling agent nominates this pair.</summary>
    public bool UseCandidate { get; set; }

    /// <summary>ERROR-CODE of an error response.</summary>
    public (int Code, string Reason)? Error { get; set; }

    /// <summary>Attributes not modelled above.</summary>
    public List<StunRawAttribute> UnknownAttributes { get; } = [];

    /// <summary>True when the datagram looks like STUN: first byte 0..3 (RFC 7983 §7) and the magic cookie.</summary>
    public static bool IsStun(ReadOnlySpan<byte> datagram) =>
        datagram.Length >= HeaderLength && datagram[0] <= 3 && BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]) == MagicCookie;

    /// <summary>Parses one STUN message; throws <see cref="StunProtocolException"/> when it is malformed.</summary>
    public static StunMessage Parse(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < HeaderLength) throw new StunProtocolException($"STUN message of {datagram.Length} bytes is shorter than the 20-byte header");
        if (datagram.Length > MaxLength) throw new StunProtocolException($"STUN message of {datagram.Length} bytes is longer than {MaxLength}");
        var type = BinaryPrimitives.ReadUInt16BigEndian(datagram);
        if ((type & 0xC000) != 0) throw new StunProtocolException("STUN message type has its top two bits set");
        if (BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]) != MagicCookie) throw new StunProtocolException("STUN magic cookie missing");
        var length = BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if ((length & 3) != 0) throw new StunProtocolException($"STUN length {length} is not a multiple of 4");
        if (HeaderLength + length != datagram.Length) throw new StunProtocolException($"STUN length {length} does not match the {datagram.Length - HeaderLength} bytes after the header");
        var m = new StunMessage
        {
            Class = (StunClass)(((type >> 7) & 2) | ((type >> 4) & 1)),
            Method = (ushort)((type & 0x000F) | ((type >> 1) & 0x0070) | ((type >> 2) & 0x0F80)),
            TransactionId = datagram.Slice(8, 12).ToArray(),
        };
        var attrs = datagram[HeaderLength..];
        var offset = 0;
        while (offset < attrs.Length)
        {
            if (attrs.Length - offset < 4) throw new StunProtocolException("STUN attribute header cut short");
            var at = BinaryPrimitives.ReadUInt16BigEndian(attrs[offset..]);
            var al = BinaryPrimitives.ReadUInt16BigEndian(attrs[(offset + 2)..]);
            var padded = (al + 3) & ~3;
            if (attrs.Length - offset - 4 < padded) throw new StunProtocolException($"STUN attribute 0x{at:x4} of {al} bytes runs past the message");
            var value = attrs.Slice(offset + 4, al);
            switch (at)
            {
                case AttrUsername:
                    if (al > 513) throw new StunProtocolException("STUN USERNAME longer than 513 bytes");
                    m.Username = Encoding.UTF8.GetString(value);
                    break;
                case AttrXorMappedAddress: m.XorMappedAddress = ReadXorAddress(value, datagram.Slice(4, 16)); break;
                case AttrPriority:
                    if (al != 4) throw new StunProtocolException("STUN PRIORITY is not 4 bytes");
                    m.Priority = BinaryPrimitives.ReadUInt32BigEndian(value);
                    break;
                case AttrUseCandidate:
                    if (al != 0) throw new StunProtocolException("STUN USE-CANDIDATE is not empty");
                    m.UseCandidate = true;
                    break;
                case AttrIceControlled:
                    if (al != 8) throw new StunProtocolException("STUN ICE-CONTROLLED is not 8 bytes");
                    m.IceControlled = BinaryPrimitives.ReadUInt64BigEndian(value);
                    break;
                case AttrIceControlling:
                    if (al != 8) throw new StunProtocolException("STUN ICE-CONTROLLING is not 8 bytes");
                    m.IceControlling = BinaryPrimitives.ReadUInt64BigEndian(value);
                    break;
                case AttrErrorCode:
                    if (al < 4) throw new StunProtocolException("STUN ERROR-CODE shorter than 4 bytes");
                    m.Error = ((value[2] & 7) * 100 + value[3], Encoding.UTF8.GetString(value[4..]));
                    break;
                case AttrMessageIntegrity:
                    if (al != 20) throw new StunProtocolException("STUN MESSAGE-INTEGRITY is not 20 bytes");
                    break;
                case AttrFingerprint:
                    if (al != 4) throw new StunProtocolException("STUN FINGERPRINT is not 4 bytes");
                    break;
                default: m.UnknownAttributes.Add(new StunRawAttribute(at, value.ToArray())); break;
            }
            offset += 4 + padded;
        }
        return m;
    }

    private static IPEndPoint ReadXorAddress(ReadOnlySpan<byte> value, ReadOnlySpan<byte> cookieAndId)
    {
        if (value.Length < 4) throw new StunProtocolException("STUN XOR-MAPPED-ADDRESS shorter than 4 bytes");
        var family = value[1];
        var port = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(value[2..]) ^ (MagicCookie >> 16));
        var size = family switch
        {
            1 => 4,
            2 => 16,
            _ => throw new StunProtocolException($"STUN XOR-MAPPED-ADDRESS family {family} is neither IPv4 nor IPv6"),
        };
        if (value.Length != 4 + size) throw new StunProtocolException("STUN XOR-MAPPED-ADDRESS has the wrong length for its family");
        Span<byte> address = stackalloc byte[size];
        for (var i = 0; i < size; i++) address[i] = (byte)(value[4 + i] ^ cookieAndId[i]);
        return new IPEndPoint(new IPAddress(address), port);
    }

    /// <summary>Checks MESSAGE-INTEGRITY with a short-term credential (key = the password's bytes, HMAC-SHA1, RFC 8489 §14.5).
    /// False when the attribute is missing or the message is malformed.</summary>
    public static bool VerifyMessageIntegrity(ReadOnlySpan<byte> datagram, ReadOnlySpan<byte> key)
    {
        if (!TryFindAttribute(datagram, AttrMessageIntegrity, out var offset)) return false;
        if (datagram.Length < offset + 24) return false;
        var covered = datagram[..offset].ToArray();
        // The length field counts up to the end of MESSAGE-INTEGRITY, as if it were the last attribute.
        BinaryPrimitives.WriteUInt16BigEndian(covered.AsSpan(2), (ushort)(offset + 24 - HeaderLength));
        Span<byte> mac = stackalloc byte[20];
        HMACSHA1.HashData(key, covered, mac);
        return CryptographicOperations.FixedTimeEquals(mac, datagram.Slice(offset + 4, 20));
    }

    /// <summary>Checks FINGERPRINT (CRC-32 of the message before it, xor 0x5354554e; RFC 8489 §14.7).</summary>
    public static bool VerifyFingerprint(ReadOnlySpan<byte> datagram)
    {
        if (!TryFindAttribute(datagram, AttrFingerprint, out var offset)) return false;
        if (datagram.Length != offset + 8) return false;
        var crc = Crc32.Compute(datagram[..offset]) ^ FingerprintXor;
        return crc == BinaryPrimitives.ReadUInt32BigEndian(datagram[(offset + 4)..]);
    }

    private static bool TryFindAttribute(ReadOnlySpan<byte> datagram, ushort type, out int offset)
    {
        offset = 0;
        if (datagram.Length < HeaderLength) return false;
        var end = HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if (end > datagram.Length) return false;
        var p = HeaderLength;
        while (p + 4 <= end)
        {
            var at = BinaryPrimitives.ReadUInt16BigEndian(datagram[p..]);
            var al = BinaryPrimitives.ReadUInt16BigEndian(datagram[(p + 2)..]);
            if (at == type)
            {
                offset = p;
                return p + 4 + al <= end;
            }
            p += 4 + ((al + 3) & ~3);
        }
        return false;
    }

    /// <summary>Writes the message; with <paramref name="integrityKey"/> adds MESSAGE-INTEGRITY, then FINGERPRINT when asked.</summary>
    public byte[] Encode(ReadOnlySpan<byte> integrityKey = default, bool fingerprint = true)
    {
        if (TransactionId is not { Length: 12 }) throw new InvalidOperationException("a STUN transaction id is 12 bytes");
        var b = new List<byte>(128);
        var type = (ushort)((Method & 0x000F) | ((Method & 0x0070) << 1) | ((Method & 0x0F80) << 2)
            | (((int)Class & 1) << 4) | (((int)Class & 2) << 7));
        Span<byte> header = stackalloc byte[HeaderLength];
        BinaryPrimitives.WriteUInt16BigEndian(header, type);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], MagicCookie);
        TransactionId.CopyTo(header[8..]);
        b.AddRange(header.ToArray());
        if (Username is not null) Add(b, AttrUsername, Encoding.UTF8.GetBytes(Username));
        if (Error is { } error)
        {
            var reason = Encoding.UTF8.GetBytes(error.Reason);
            var v = new byte[4 + reason.Length];
            v[2] = (byte)(error.Code / 100);
            v[3] = (byte)(error.Code % 100);
            reason.CopyTo(v, 4);
            Add(b, AttrErrorCode, v);
        }
        if (XorMappedAddress is { } mapped) Add(b, AttrXorMappedAddress, WriteXorAddress(mapped, header.Slice(4, 16)));
        if (Priority is { } priority) { var v = new byte[4]; BinaryPrimitives.WriteUInt32BigEndian(v, priority); Add(b, AttrPriority, v); }
        if (UseCandidate) Add(b, AttrUseCandidate, []);
        if (IceControlled is { } controlled) { var v = new byte[8]; BinaryPrimitives.WriteUInt64BigEndian(v, controlled); Add(b, AttrIceControlled, v); }
        if (IceControlling is { } controlling) { var v = new byte[8]; BinaryPrimitives.WriteUInt64BigEndian(v, controlling); Add(b, AttrIceControlling, v); }
        foreach (var raw in UnknownAttributes) Add(b, raw.Type, raw.Value);
        var bytes = b.ToArray();
        if (!integrityKey.IsEmpty)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)(bytes.Length + 24 - HeaderLength));
            var mac = HMACSHA1.HashData(integrityKey, bytes);
            b.Clear();
            b.AddRange(bytes);
            Add(b, AttrMessageIntegrity, mac);
            bytes = b.ToArray();
        }
        if (fingerprint)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)(bytes.Length + 8 - HeaderLength));
            var crc = Crc32.Compute(bytes) ^ FingerprintXor;
            var v = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(v, crc);
            b.Clear();
            b.AddRange(bytes);
            Add(b, AttrFingerprint, v);
            bytes = b.ToArray();
        }
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)(bytes.Length - HeaderLength));
        return bytes;
    }

    private static byte[] WriteXorAddress(IPEndPoint endPoint, ReadOnlySpan<byte> cookieAndId)
    {
        var address = endPoint.Address.IsIPv4MappedToIPv6 ? endPoint.Address.MapToIPv4() : endPoint.Address;
        var raw = address.GetAddressBytes();
        var v = new byte[4 + raw.Length];
        v[1] = address.AddressFamily == AddressFamily.InterNetwork ? (byte)1 : (byte)2;
        BinaryPrimitives.WriteUInt16BigEndian(v.AsSpan(2), (ushort)(endPoint.Port ^ (MagicCookie >> 16)));
        for (var i = 0; i < raw.Length; i++) v[4 + i] = (byte)(raw[i] ^ cookieAndId[i]);
        return v;
    }

    private static void Add(List<byte> b, ushort type, ReadOnlySpan<byte> value)
    {
        b.Add((byte)(type >> 8));
        b.Add((byte)type);
        b.Add((byte)(value.Length >> 8));
        b.Add((byte)value.Length);
        b.AddRange(value.ToArray());
        for (var i = value.Length; (i & 3) != 0; i++) b.Add(0);
    }

    private static class Crc32
    {
        private static readonly uint[] Table = Build();

        private static uint[] Build()
        {
            var t = new uint[256];
            for (uint i = 0; i < 256; i++)
            {
                var c = i;
                for (var k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
                t[i] = c;
            }
            return t;
        }

        public static uint Compute(ReadOnlySpan<byte> data)
        {
            var c = 0xFFFFFFFFu;
            foreach (var x in data) c = Table[(c ^ x) & 0xFF] ^ (c >> 8);
            return c ^ 0xFFFFFFFFu;
        }
    }
}
