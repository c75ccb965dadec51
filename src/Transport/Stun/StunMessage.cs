using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Pinhole.Transport.Stun;

/// <summary>
/// A STUN message (RFC 8489 §5–6) with the attributes ICE connectivity checks use (RFC 8445 §7.1,
/// §16.1). <see cref="Parse"/> is pure (bytes in, message out) and throws only
/// <see cref="StunProtocolException"/>; <see cref="Encode"/> writes the message, optionally with
/// MESSAGE-INTEGRITY (short-term credentials: the key is the password) and FINGERPRINT.
/// </summary>
/// <remarks>
/// Attributes this class does not type (MAPPED-ADDRESS, REALM, NONCE, …) are kept raw in
/// <see cref="UnknownAttributes"/> in the order they came and written back after the typed ones.
/// An ICE agent answers a request carrying an unknown comprehension-required attribute
/// (<see cref="StunAttribute.IsComprehensionRequired"/>) with a 420 error (RFC 8489 §6.3).
/// </remarks>
public sealed class StunMessage
{
    /// <summary>The fixed magic cookie (RFC 8489 §5).</summary>
    public const uint MagicCookie = 0x2112A442;

    /// <summary>Length of the message header.</summary>
    public const int HeaderLength = 20;

    /// <summary>Length of a transaction ID.</summary>
    public const int TransactionIdLength = 12;

    /// <summary>Most attributes one message may carry; STUN messages for ICE carry fewer than ten.</summary>
    public const int MaxAttributes = 64;

    /// <summary>Longest USERNAME value accepted (RFC 8489 §14.3: fewer than 509 bytes, plus slack for old peers).</summary>
    public const int MaxUsernameLength = 513;

    /// <summary>Longest reason phrase or SOFTWARE value accepted (RFC 8489 §14.8, §14.14: at most 763 bytes).</summary>
    public const int MaxTextLength = 763;

    private const uint FingerprintXor = 0x5354554E;
    private const int MessageIntegrityLength = 20;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private byte[] _transactionId = NewTransactionId();

    /// <summary>Request, indication, success or error response.</summary>
    public StunClass Class { get; set; }

    /// <summary>The method (12 bits); <see cref="StunMethods.Binding"/> for ICE.</summary>
    public ushort Method { get; set; } = StunMethods.Binding;

    /// <summary>The 96-bit transaction ID (12 bytes); a fresh random one by default.</summary>
    public byte[] TransactionId
    {
        get => _transactionId;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.Length != TransactionIdLength) throw new ArgumentException("a STUN transaction ID is 12 bytes", nameof(value));
            _transactionId = value;
        }
    }

    /// <summary>USERNAME: in an ICE check, "receiver's ufrag:sender's ufrag" (RFC 8445 §7.2.2).</summary>
    public string? Username { get; set; }

    /// <summary>XOR-MAPPED-ADDRESS: the source address the responder saw (RFC 8489 §14.2).</summary>
    public IPEndPoint? XorMappedAddress { get; set; }

    /// <summary>PRIORITY: the priority a peer-reflexive candidate would get (RFC 8445 §7.1.1).</summary>
    public uint? Priority { get; set; }

    /// <summary>ICE-CONTROLLING: present when the sender is the controlling agent; its tie-breaker.</summary>
    public ulong? IceControlling { get; set; }

    /// <summary>ICE-CONTROLLED: present when the sender is the controlled agent; its tie-breaker.</summary>
    public ulong? IceControlled { get; set; }

    /// <summary>USE-CANDIDATE: the controlling agent nominates this pair (RFC 8445 §7.1.2).</summary>
    public bool UseCandidate { get; set; }

    /// <summary>ERROR-CODE: the code (300–699) and reason phrase of an error response.</summary>
    public (int Code, string Reason)? Error { get; set; }

    /// <summary>SOFTWARE: the sender's name and version, for diagnostics only.</summary>
    public string? Software { get; set; }

    /// <summary>Attributes not typed above, raw, in the order they came.</summary>
    internal IList<StunAttribute> UnknownAttributes { get; } = new List<StunAttribute>();

    /// <summary>After <see cref="Parse"/>: the message carried MESSAGE-INTEGRITY (check it with <see cref="VerifyMessageIntegrity"/>).</summary>
    public bool HasMessageIntegrity { get; private set; }

    /// <summary>After <see cref="Parse"/>: the message carried FINGERPRINT (check it with <see cref="VerifyFingerprint"/>).</summary>
    public bool HasFingerprint { get; private set; }

    /// <summary>A fresh random 96-bit transaction ID (RFC 8489 §6: uniformly and randomly chosen).</summary>
    internal static byte[] NewTransactionId() => RandomNumberGenerator.GetBytes(TransactionIdLength);

    /// <summary>A success response to <paramref name="request"/>: same method and transaction ID, no attributes.</summary>
    internal static StunMessage CreateSuccessResponse(StunMessage request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new StunMessage { Class = StunClass.SuccessResponse, Method = request.Method, TransactionId = (byte[])request.TransactionId.Clone() };
    }

    /// <summary>An error response to <paramref name="request"/> with ERROR-CODE <paramref name="code"/> (e.g. 400, 401, 420, 487).</summary>
    internal static StunMessage CreateErrorResponse(StunMessage request, int code, string reason)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(reason);
        if (code is < 300 or > 699) throw new ArgumentOutOfRangeException(nameof(code), code, "a STUN error code is 300 to 699");
        return new StunMessage
        {
            Class = StunClass.ErrorResponse,
            Method = request.Method,
            TransactionId = (byte[])request.TransactionId.Clone(),
            Error = (code, reason),
        };
    }

    /// <summary>
    /// True when <paramref name="datagram"/> looks like STUN: at least a header, the first byte 0..3
    /// (RFC 7983 §7: how STUN is told from DTLS, RTP and RTCP on one port) and the magic cookie.
    /// </summary>
    public static bool IsStun(ReadOnlySpan<byte> datagram) =>
        datagram.Length >= HeaderLength && datagram[0] <= 3 && BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]) == MagicCookie;

    /// <summary>Parses one whole STUN message (a UDP datagram or one RFC 4571 frame).</summary>
    /// <exception cref="StunProtocolException">The bytes are not a well-formed STUN message.</exception>
    public static StunMessage Parse(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < HeaderLength) throw new StunProtocolException($"STUN message of {datagram.Length} bytes is shorter than the 20-byte header");
        var type = BinaryPrimitives.ReadUInt16BigEndian(datagram);
        if ((type & 0xC000) != 0) throw new StunProtocolException("the two most significant bits of a STUN message must be zero");
        var length = BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if (BinaryPrimitives.ReadUInt32BigEndian(datagram[4..]) != MagicCookie) throw new StunProtocolException("STUN magic cookie missing");
        if (length % 4 != 0) throw new StunProtocolException($"STUN message length {length} is not a multiple of 4");
        if (HeaderLength + length != datagram.Length)
            throw new StunProtocolException($"STUN message length {length} does not match the {datagram.Length - HeaderLength} bytes after the header");

        var message = new StunMessage
        {
            Method = (ushort)((type & 0x000F) | ((type & 0x00E0) >> 1) | ((type & 0x3E00) >> 2)),
            Class = (StunClass)(((type >> 4) & 1) | ((type >> 7) & 2)),
            TransactionId = datagram.Slice(8, TransactionIdLength).ToArray(),
        };
        var seen = new HashSet<ushort>();
        var attributes = datagram[HeaderLength..];
        var offset = 0;
        var count = 0;
        while (offset < attributes.Length)
        {
            if (attributes.Length - offset < 4) throw new StunProtocolException("STUN attribute header cut short");
            if (++count > MaxAttributes) throw new StunProtocolException($"more than {MaxAttributes} STUN attributes");
            var attrType = BinaryPrimitives.ReadUInt16BigEndian(attributes[offset..]);
            var attrLength = BinaryPrimitives.ReadUInt16BigEndian(attributes[(offset + 2)..]);
            var padded = (attrLength + 3) & ~3;
            if (attributes.Length - offset - 4 < padded) throw new StunProtocolException($"STUN attribute 0x{attrType:X4} of {attrLength} bytes runs past the message");
            var value = attributes.Slice(offset + 4, attrLength);
            offset += 4 + padded;

            if (message.HasFingerprint) throw new StunProtocolException("STUN attribute after FINGERPRINT, which must be last");
            if (attrType == StunAttributeTypes.Fingerprint)
            {
                if (attrLength != 4) throw new StunProtocolException("FINGERPRINT must be 4 bytes");
                message.HasFingerprint = true;
                continue;
            }
            // RFC 8489 §14.5: after MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT count.
            if (message.HasMessageIntegrity) continue;
            if (attrType == StunAttributeTypes.MessageIntegrity)
            {
                if (attrLength != MessageIntegrityLength) throw new StunProtocolException("MESSAGE-INTEGRITY must be 20 bytes");
                message.HasMessageIntegrity = true;
                continue;
            }
            // RFC 8489 §14: only the first of repeated attributes is processed.
            if (!seen.Add(attrType)) continue;
            message.ReadAttribute(attrType, value, datagram);
        }
        return message;
    }

    private void ReadAttribute(ushort type, ReadOnlySpan<byte> value, ReadOnlySpan<byte> datagram)
    {
        switch (type)
        {
            case StunAttributeTypes.Username:
                if (value.Length > MaxUsernameLength) throw new StunProtocolException($"USERNAME of {value.Length} bytes is longer than {MaxUsernameLength}");
                Username = Utf8(value, "USERNAME");
                break;
            case StunAttributeTypes.XorMappedAddress:
                XorMappedAddress = ReadXorAddress(value, datagram);
                break;
            case StunAttributeTypes.Priority:
                if (value.Length != 4) throw new StunProtocolException("PRIORITY must be 4 bytes");
                Priority = BinaryPrimitives.ReadUInt32BigEndian(value);
                break;
            case StunAttributeTypes.IceControlling:
                if (value.Length != 8) throw new StunProtocolException("ICE-CONTROLLING must be 8 bytes");
                IceControlling = BinaryPrimitives.ReadUInt64BigEndian(value);
                break;
            case StunAttributeTypes.IceControlled:
                if (value.Length != 8) throw new StunProtocolException("ICE-CONTROLLED must be 8 bytes");
                IceControlled = BinaryPrimitives.ReadUInt64BigEndian(value);
                break;
            case StunAttributeTypes.UseCandidate:
                if (value.Length != 0) throw new StunProtocolException("USE-CANDIDATE has no value");
                UseCandidate = true;
                break;
            case StunAttributeTypes.ErrorCode:
                // §14.8: 21 reserved bits, 3-bit class (3..6), 8-bit number (0..99), reason phrase.
                if (value.Length < 4) throw new StunProtocolException("ERROR-CODE shorter than 4 bytes");
                if (value.Length - 4 > MaxTextLength) throw new StunProtocolException("ERROR-CODE reason phrase too long");
                var errorClass = value[2] & 0x07;
                var number = value[3];
                if (errorClass is < 3 or > 6 || number > 99) throw new StunProtocolException($"ERROR-CODE class {errorClass} number {number} out of range");
                Error = (errorClass * 100 + number, Utf8(value[4..], "ERROR-CODE reason"));
                break;
            case StunAttributeTypes.Software:
                if (value.Length > MaxTextLength) throw new StunProtocolException("SOFTWARE too long");
                Software = Utf8(value, "SOFTWARE");
                break;
            default:
                UnknownAttributes.Add(new StunAttribute(type, value.ToArray()));
                break;
        }
    }

    private static string Utf8(ReadOnlySpan<byte> value, string what)
    {
        try
        {
            return StrictUtf8.GetString(value);
        }
        catch (DecoderFallbackException e)
        {
            throw new StunProtocolException($"{what} is not UTF-8", e);
        }
    }

    private static IPEndPoint ReadXorAddress(ReadOnlySpan<byte> value, ReadOnlySpan<byte> datagram)
    {
        // §14.2: reserved byte, family (1 IPv4, 2 IPv6), port xor the cookie's top 16 bits, address
        // xor the cookie (IPv4) or the cookie and transaction ID (IPv6).
        if (value.Length < 4) throw new StunProtocolException("XOR-MAPPED-ADDRESS shorter than 4 bytes");
        var family = value[1];
        var addressLength = family switch
        {
            1 => 4,
            2 => 16,
            _ => throw new StunProtocolException($"XOR-MAPPED-ADDRESS family {family} is neither IPv4 (1) nor IPv6 (2)"),
        };
        if (value.Length != 4 + addressLength) throw new StunProtocolException($"XOR-MAPPED-ADDRESS of family {family} must be {4 + addressLength} bytes");
        var port = (ushort)(BinaryPrimitives.ReadUInt16BigEndian(value[2..]) ^ (MagicCookie >> 16));
        Span<byte> address = stackalloc byte[16];
        for (var i = 0; i < addressLength; i++) address[i] = (byte)(value[4 + i] ^ datagram[4 + i]); // cookie then transaction ID
        return new IPEndPoint(new IPAddress(address[..addressLength]), port);
    }

    /// <summary>
    /// True when the message carries MESSAGE-INTEGRITY and its HMAC-SHA1 under <paramref name="key"/>
    /// matches (RFC 8489 §14.5). For ICE's short-term credentials the key is the password's bytes
    /// (RFC 8489 §9.1.1); for long-term credentials it is MD5(username ":" realm ":" password).
    /// False for malformed input; never throws.
    /// </summary>
    public static bool VerifyMessageIntegrity(ReadOnlySpan<byte> datagram, ReadOnlySpan<byte> key)
    {
        if (!TryFindAttribute(datagram, StunAttributeTypes.MessageIntegrity, out var offset, out var length) || length != MessageIntegrityLength) return false;
        Span<byte> mac = stackalloc byte[MessageIntegrityLength];
        ComputeMessageIntegrity(datagram[..offset], key, mac);
        return CryptographicOperations.FixedTimeEquals(mac, datagram.Slice(offset + 4, MessageIntegrityLength));
    }

    /// <summary>
    /// True when the message ends in a FINGERPRINT whose value is the CRC-32 of the message before
    /// it xor 0x5354554E (RFC 8489 §14.7). False for malformed input; never throws.
    /// </summary>
    public static bool VerifyFingerprint(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length < HeaderLength + 8 || !IsStun(datagram)) return false;
        if (BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]) != datagram.Length - HeaderLength) return false;
        var attribute = datagram[^8..];
        if (BinaryPrimitives.ReadUInt16BigEndian(attribute) != StunAttributeTypes.Fingerprint || BinaryPrimitives.ReadUInt16BigEndian(attribute[2..]) != 4) return false;
        return BinaryPrimitives.ReadUInt32BigEndian(attribute[4..]) == (Crc32.Compute(datagram[..^8]) ^ FingerprintXor);
    }

    /// <summary>Finds the first attribute of <paramref name="type"/>, walking the attribute list with bounds checks.</summary>
    private static bool TryFindAttribute(ReadOnlySpan<byte> datagram, ushort type, out int offset, out int length)
    {
        offset = 0;
        length = 0;
        if (!IsStun(datagram)) return false;
        var end = HeaderLength + BinaryPrimitives.ReadUInt16BigEndian(datagram[2..]);
        if (end > datagram.Length) return false;
        var position = HeaderLength;
        while (end - position >= 4)
        {
            var attrType = BinaryPrimitives.ReadUInt16BigEndian(datagram[position..]);
            var attrLength = BinaryPrimitives.ReadUInt16BigEndian(datagram[(position + 2)..]);
            if (end - position - 4 < attrLength) return false;
            if (attrType == type)
            {
                offset = position;
                length = attrLength;
                return true;
            }
            position += 4 + ((attrLength + 3) & ~3);
        }
        return false;
    }

    /// <summary>
    /// HMAC-SHA1 of <paramref name="before"/> (header and the attributes before MESSAGE-INTEGRITY)
    /// with the header's length field set as if MESSAGE-INTEGRITY were the last attribute (§14.5).
    /// </summary>
    private static void ComputeMessageIntegrity(ReadOnlySpan<byte> before, ReadOnlySpan<byte> key, Span<byte> mac)
    {
        var rented = ArrayPool<byte>.Shared.Rent(before.Length);
        try
        {
            var copy = rented.AsSpan(0, before.Length);
            before.CopyTo(copy);
            BinaryPrimitives.WriteUInt16BigEndian(copy[2..], (ushort)(before.Length - HeaderLength + 4 + MessageIntegrityLength));
#pragma warning disable CA5350 // HMAC-SHA1 is what RFC 8489 §14.5 prescribes for MESSAGE-INTEGRITY.
            HMACSHA1.HashData(key, copy, mac);
#pragma warning restore CA5350
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Writes the message: the typed attributes that are set, then <see cref="UnknownAttributes"/>,
    /// then MESSAGE-INTEGRITY when <paramref name="integrityKey"/> is not empty, then FINGERPRINT
    /// when <paramref name="fingerprint"/> is true. Padding bytes are zero.
    /// </summary>
    /// <exception cref="InvalidOperationException">A value does not fit its attribute (too long, error code out of range).</exception>
    public byte[] Encode(ReadOnlySpan<byte> integrityKey = default, bool fingerprint = true)
    {
        var attributes = new List<(ushort Type, byte[] Value)>();
        if (Username is not null) attributes.Add((StunAttributeTypes.Username, Text(Username, MaxUsernameLength, "USERNAME")));
        if (Priority is { } priority) attributes.Add((StunAttributeTypes.Priority, BigEndian32(priority)));
        if (IceControlled is { } controlled) attributes.Add((StunAttributeTypes.IceControlled, BigEndian64(controlled)));
        if (IceControlling is { } controlling) attributes.Add((StunAttributeTypes.IceControlling, BigEndian64(controlling)));
        if (UseCandidate) attributes.Add((StunAttributeTypes.UseCandidate, []));
        if (XorMappedAddress is not null) attributes.Add((StunAttributeTypes.XorMappedAddress, XorAddress(XorMappedAddress, TransactionId)));
        if (Error is { } error)
        {
            if (error.Code is < 300 or > 699) throw new InvalidOperationException($"STUN error code {error.Code} is not 300 to 699");
            var reason = Text(error.Reason, MaxTextLength, "ERROR-CODE reason");
            var value = new byte[4 + reason.Length];
            value[2] = (byte)(error.Code / 100);
            value[3] = (byte)(error.Code % 100);
            reason.CopyTo(value, 4);
            attributes.Add((StunAttributeTypes.ErrorCode, value));
        }
        if (Software is not null) attributes.Add((StunAttributeTypes.Software, Text(Software, MaxTextLength, "SOFTWARE")));
        foreach (var unknown in UnknownAttributes)
        {
            if (unknown.Value.Length > ushort.MaxValue) throw new InvalidOperationException("a STUN attribute value is at most 65535 bytes");
            attributes.Add((unknown.Type, unknown.Value));
        }

        var length = HeaderLength;
        foreach (var (_, value) in attributes) length += 4 + ((value.Length + 3) & ~3);
        var withIntegrity = !integrityKey.IsEmpty;
        if (withIntegrity) length += 4 + MessageIntegrityLength;
        if (fingerprint) length += 8;
        if (length - HeaderLength > ushort.MaxValue) throw new InvalidOperationException("STUN message longer than 65535 bytes");

        var bytes = new byte[length];
        if (Method > 0xFFF) throw new InvalidOperationException("a STUN method is 12 bits");
        var c = (int)Class;
        var type = (Method & 0x000F) | ((c & 1) << 4) | ((Method & 0x0070) << 1) | ((c & 2) << 7) | ((Method & 0x0F80) << 2);
        BinaryPrimitives.WriteUInt16BigEndian(bytes, (ushort)type);
        BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)(length - HeaderLength));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), MagicCookie);
        TransactionId.CopyTo(bytes, 8);
        var offset = HeaderLength;
        foreach (var (attrType, value) in attributes)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset), attrType);
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset + 2), (ushort)value.Length);
            value.CopyTo(bytes, offset + 4);
            offset += 4 + ((value.Length + 3) & ~3);
        }
        if (withIntegrity)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset), StunAttributeTypes.MessageIntegrity);
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset + 2), MessageIntegrityLength);
            ComputeMessageIntegrity(bytes.AsSpan(0, offset), integrityKey, bytes.AsSpan(offset + 4, MessageIntegrityLength));
            offset += 4 + MessageIntegrityLength;
        }
        if (fingerprint)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset), StunAttributeTypes.Fingerprint);
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset + 2), 4);
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(offset + 4), Crc32.Compute(bytes.AsSpan(0, offset)) ^ FingerprintXor);
        }
        return bytes;
    }

    private static byte[] Text(string text, int max, string what)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length > max) throw new InvalidOperationException($"{what} is {bytes.Length} bytes, more than {max}");
        return bytes;
    }

    private static byte[] BigEndian32(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }

    private static byte[] BigEndian64(ulong value)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        return b;
    }

    private static byte[] XorAddress(IPEndPoint endPoint, byte[] transactionId)
    {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the peer knows itself by its IPv4 address.
        var address = endPoint.Address.IsIPv4MappedToIPv6 ? endPoint.Address.MapToIPv4() : endPoint.Address;
        var raw = address.GetAddressBytes();
        var value = new byte[4 + raw.Length];
        value[1] = address.AddressFamily == AddressFamily.InterNetwork ? (byte)1 : (byte)2;
        BinaryPrimitives.WriteUInt16BigEndian(value.AsSpan(2), (ushort)(endPoint.Port ^ (MagicCookie >> 16)));
        Span<byte> mask = stackalloc byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(mask, MagicCookie);
        transactionId.CopyTo(mask[4..]);
        for (var i = 0; i < raw.Length; i++) value[4 + i] = (byte)(raw[i] ^ mask[i]);
        return value;
    }
}
