namespace Pinhole.Transport.Stun;

/// <summary>The class of a STUN message (RFC 8489 §5): the two C bits of the message type.</summary>
public enum StunClass
{
    /// <summary>A request (C1 C0 = 0b00): expects a success or error response.</summary>
    Request = 0,

    /// <summary>An indication (0b01): no response.</summary>
    Indication = 1,

    /// <summary>A success response (0b10).</summary>
    SuccessResponse = 2,

    /// <summary>An error response (0b11), carrying ERROR-CODE.</summary>
    ErrorResponse = 3,
}

/// <summary>STUN method numbers (IANA "STUN Methods" registry).</summary>
public static class StunMethods
{
    /// <summary>Binding (RFC 8489 §18.2): the only method ICE connectivity checks use.</summary>
    public const ushort Binding = 0x001;
}

/// <summary>STUN attribute types this library knows by name (IANA "STUN Attributes" registry).</summary>
internal static class StunAttributeTypes
{
    /// <summary>MAPPED-ADDRESS (RFC 8489 §14.1); kept raw, ICE uses the XOR form.</summary>
    public const ushort MappedAddress = 0x0001;

    /// <summary>USERNAME (RFC 8489 §14.3): for ICE, "remote-ufrag:local-ufrag".</summary>
    public const ushort Username = 0x0006;

    /// <summary>MESSAGE-INTEGRITY (RFC 8489 §14.5): HMAC-SHA1 over the message up to it.</summary>
    public const ushort MessageIntegrity = 0x0008;

    /// <summary>ERROR-CODE (RFC 8489 §14.8).</summary>
    public const ushort ErrorCode = 0x0009;

    /// <summary>UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).</summary>
    public const ushort UnknownAttributes = 0x000A;

    /// <summary>REALM (RFC 8489 §14.9); kept raw.</summary>
    public const ushort Realm = 0x0014;

    /// <summary>NONCE (RFC 8489 §14.10); kept raw.</summary>
    public const ushort Nonce = 0x0015;

    /// <summary>MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6); kept raw, may follow MESSAGE-INTEGRITY.</summary>
    public const ushort MessageIntegritySha256 = 0x001C;

    /// <summary>XOR-MAPPED-ADDRESS (RFC 8489 §14.2).</summary>
    public const ushort XorMappedAddress = 0x0020;

    /// <summary>PRIORITY (RFC 8445 §16.1).</summary>
    public const ushort Priority = 0x0024;

    /// <summary>USE-CANDIDATE (RFC 8445 §16.1): no value.</summary>
    public const ushort UseCandidate = 0x0025;

    /// <summary>SOFTWARE (RFC 8489 §14.14).</summary>
    public const ushort Software = 0x8022;

    /// <summary>FINGERPRINT (RFC 8489 §14.7): CRC-32 of the message up to it, xor 0x5354554E.</summary>
    public const ushort Fingerprint = 0x8028;

    /// <summary>ICE-CONTROLLED (RFC 8445 §16.1): the sender's tie-breaker.</summary>
    public const ushort IceControlled = 0x8029;

    /// <summary>ICE-CONTROLLING (RFC 8445 §16.1): the sender's tie-breaker.</summary>
    public const ushort IceControlling = 0x802A;
}

/// <summary>An attribute kept as it came (type and value, without padding).</summary>
/// <param name="Type">The attribute type; below 0x8000 it is comprehension-required (RFC 8489 §14).</param>
/// <param name="Value">The value bytes, without the padding to 32 bits.</param>
internal sealed record StunAttribute(ushort Type, byte[] Value)
{
    /// <summary>True when an agent that does not know this type must reject the message (RFC 8489 §14).</summary>
    public bool IsComprehensionRequired => Type < 0x8000;
}
