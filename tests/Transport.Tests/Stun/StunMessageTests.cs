using System.Net;
using System.Security.Cryptography;
using System.Text;
using Pinhole.Transport.Stun;

namespace Pinhole.Transport.Tests.Stun;

/// <summary>
/// STUN against the RFC 5769 test vectors (the bytes are the RFC's, sections 2.1–2.4), round trips
/// and the ICE attributes.
/// </summary>
public class StunMessageTests
{
    private static readonly byte[] ShortTermPassword = Encoding.ASCII.GetBytes("VOkJxbRl1RmTxUk/WvJxBt");

    // RFC 5769 §2.1: request with SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY,
    // FINGERPRINT; padding bytes are spaces (0x20), which a receiver must ignore.
    internal static readonly byte[] SampleRequest = Convert.FromHexString(
        "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74002400046e0001ff" +
        "80290008932ff9b151263b36000600096576746a3a68367659202020000800149aeaa70cbfd8cb56781ef2b5b2d3f249" +
        "c1b571a280280004e57a3bcf");

    // RFC 5769 §2.2: success response with XOR-MAPPED-ADDRESS 192.0.2.1:32853.
    internal static readonly byte[] SampleIPv4Response = Convert.FromHexString(
        "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643" +
        "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96");

    // RFC 5769 §2.3: success response with XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853.
    internal static readonly byte[] SampleIPv6Response = Convert.FromHexString(
        "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000140002a1470113a9fa" +
        "a5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275bfe3ed4180280004c8fb0b4c");

    // RFC 5769 §2.4: request with long-term credentials (USERNAME "マトリックス", NONCE, REALM), no FINGERPRINT.
    internal static readonly byte[] SampleLongTermRequest = Convert.FromHexString(
        "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b9000000150" +
        "01c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b6578616d706c652e6f72670000" +
        "080014f67024656dd64a3e02b8e0712e85c9a28ca89666");

    [Fact]
    public void RFC5769_sample_request_parses_and_its_integrity_and_fingerprint_verify()
    {
        Assert.True(StunMessage.IsStun(SampleRequest));
        var m = StunMessage.Parse(SampleRequest);
        Assert.Equal(StunClass.Request, m.Class);
        Assert.Equal(StunMethods.Binding, m.Method);
        Assert.Equal(Convert.FromHexString("b7e7a701bc34d686fa87dfae"), m.TransactionId);
        Assert.Equal("STUN test client", m.Software);
        Assert.Equal(0x6e0001ffu, m.Priority);
        Assert.Equal(0x932ff9b151263b36ul, m.IceControlled);
        Assert.Null(m.IceControlling);
        Assert.False(m.UseCandidate);
        Assert.Equal("evtj:h6vY", m.Username);
        Assert.True(m.HasMessageIntegrity);
        Assert.True(m.HasFingerprint);
        Assert.Empty(m.UnknownAttributes);
        Assert.True(StunMessage.VerifyMessageIntegrity(SampleRequest, ShortTermPassword));
        Assert.True(StunMessage.VerifyFingerprint(SampleRequest));
        Assert.False(StunMessage.VerifyMessageIntegrity(SampleRequest, "VOkJxbRl1RmTxUk/WvJxBT"u8));
    }

    [Fact]
    public void RFC5769_IPv4_response_gives_the_mapped_address_and_verifies()
    {
        var m = StunMessage.Parse(SampleIPv4Response);
        Assert.Equal(StunClass.SuccessResponse, m.Class);
        Assert.Equal(StunMethods.Binding, m.Method);
        Assert.Equal("test vector", m.Software);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 32853), m.XorMappedAddress);
        Assert.True(StunMessage.VerifyMessageIntegrity(SampleIPv4Response, ShortTermPassword));
        Assert.True(StunMessage.VerifyFingerprint(SampleIPv4Response));
    }

    [Fact]
    public void RFC5769_IPv6_response_gives_the_mapped_address_and_verifies()
    {
        var m = StunMessage.Parse(SampleIPv6Response);
        Assert.Equal(StunClass.SuccessResponse, m.Class);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8:1234:5678:11:2233:4455:6677"), 32853), m.XorMappedAddress);
        Assert.True(StunMessage.VerifyMessageIntegrity(SampleIPv6Response, ShortTermPassword));
        Assert.True(StunMessage.VerifyFingerprint(SampleIPv6Response));
    }

    [Fact]
    public void RFC5769_long_term_request_verifies_with_the_MD5_key_and_encodes_to_the_same_bytes()
    {
        var m = StunMessage.Parse(SampleLongTermRequest);
        Assert.Equal("\u30DE\u30C8\u30EA\u30C3\u30AF\u30B9", m.Username);
        Assert.False(m.HasFingerprint);
        Assert.Equal([StunAttributeTypes.Nonce, StunAttributeTypes.Realm], m.UnknownAttributes.Select(a => a.Type));
        Assert.Equal("f//499k954d6OL34oL9FSTvy64sA", Encoding.ASCII.GetString(m.UnknownAttributes[0].Value));
        Assert.Equal("example.org", Encoding.ASCII.GetString(m.UnknownAttributes[1].Value));
        // RFC 8489 §9.2.2: key = MD5(username ":" realm ":" SASLprep(password)); the RFC's password
        // "The<U+00AD>M<U+00AA>tr<U+2168>" is "TheMatrIX" after SASLprep.
#pragma warning disable CA5351 // MD5 is the long-term credential key derivation the RFC defines.
        var key = MD5.HashData(Encoding.UTF8.GetBytes(m.Username + ":example.org:TheMatrIX"));
#pragma warning restore CA5351
        Assert.True(StunMessage.VerifyMessageIntegrity(SampleLongTermRequest, key));
        // This vector pads with zeros, so our encoder reproduces it byte for byte, HMAC included.
        Assert.Equal(SampleLongTermRequest, m.Encode(key, fingerprint: false));
    }

    [Fact]
    public void A_binding_request_round_trips_with_every_ICE_attribute()
    {
        var request = new StunMessage
        {
            Class = StunClass.Request,
            Username = "remote:local",
            Priority = 0x7e7f00ff,
            IceControlling = 0x0102030405060708,
            UseCandidate = true,
        };
        request.UnknownAttributes.Add(new StunAttribute(0xC057, [1, 2, 3])); // Chrome's NETWORK-COST style, comprehension-optional
        var bytes = request.Encode(ShortTermPassword);
        Assert.Equal(0, bytes.Length % 4);
        Assert.True(StunMessage.VerifyMessageIntegrity(bytes, ShortTermPassword));
        Assert.True(StunMessage.VerifyFingerprint(bytes));
        var parsed = StunMessage.Parse(bytes);
        Assert.Equal(request.TransactionId, parsed.TransactionId);
        Assert.Equal(StunClass.Request, parsed.Class);
        Assert.Equal("remote:local", parsed.Username);
        Assert.Equal(0x7e7f00ffu, parsed.Priority);
        Assert.Equal(0x0102030405060708ul, parsed.IceControlling);
        Assert.True(parsed.UseCandidate);
        var unknown = Assert.Single(parsed.UnknownAttributes);
        Assert.Equal(0xC057, unknown.Type);
        Assert.False(unknown.IsComprehensionRequired);
        Assert.Equal(new byte[] { 1, 2, 3 }, unknown.Value);
    }

    [Theory]
    [InlineData("203.0.113.7", 50000)]
    [InlineData("::ffff:203.0.113.7", 1)]
    [InlineData("2001:db8::1", 65535)]
    public void A_success_response_round_trips_its_mapped_address(string address, int port)
    {
        var request = StunMessage.Parse(SampleRequest);
        var response = StunMessage.CreateSuccessResponse(request);
        response.XorMappedAddress = new IPEndPoint(IPAddress.Parse(address), port);
        var bytes = response.Encode(ShortTermPassword);
        var parsed = StunMessage.Parse(bytes);
        Assert.Equal(StunClass.SuccessResponse, parsed.Class);
        Assert.Equal(request.TransactionId, parsed.TransactionId);
        var expected = IPAddress.Parse(address);
        if (expected.IsIPv4MappedToIPv6) expected = expected.MapToIPv4(); // the peer knows itself by its IPv4 address
        Assert.Equal(new IPEndPoint(expected, port), parsed.XorMappedAddress);
        Assert.True(StunMessage.VerifyMessageIntegrity(bytes, ShortTermPassword));
    }

    [Fact]
    public void An_error_response_round_trips_its_code_and_reason()
    {
        var request = StunMessage.Parse(SampleRequest);
        var bytes = StunMessage.CreateErrorResponse(request, 487, "Role Conflict").Encode();
        var parsed = StunMessage.Parse(bytes);
        Assert.Equal(StunClass.ErrorResponse, parsed.Class);
        Assert.Equal((487, "Role Conflict"), parsed.Error);
        Assert.False(parsed.HasMessageIntegrity);
        Assert.True(StunMessage.VerifyFingerprint(bytes));
        Assert.Throws<ArgumentOutOfRangeException>(() => StunMessage.CreateErrorResponse(request, 200, "OK"));
    }

    [Theory]
    [InlineData(StunClass.Request, 0x001, 0x0001)]
    [InlineData(StunClass.Indication, 0x001, 0x0011)]
    [InlineData(StunClass.SuccessResponse, 0x001, 0x0101)]
    [InlineData(StunClass.ErrorResponse, 0x001, 0x0111)]
    [InlineData(StunClass.SuccessResponse, 0xFFF, 0x3EEF | 0x0100)]
    public void Class_and_method_interleave_into_the_message_type(StunClass c, ushort method, int type)
    {
        var bytes = new StunMessage { Class = c, Method = method }.Encode(fingerprint: false);
        Assert.Equal(type, (bytes[0] << 8) | bytes[1]);
        var parsed = StunMessage.Parse(bytes);
        Assert.Equal(c, parsed.Class);
        Assert.Equal(method, parsed.Method);
    }

    [Fact]
    public void Any_flipped_bit_fails_integrity_or_fingerprint()
    {
        for (var i = 0; i < SampleRequest.Length * 8; i++)
        {
            var copy = (byte[])SampleRequest.Clone();
            copy[i / 8] ^= (byte)(1 << (i % 8));
            Assert.False(StunMessage.VerifyMessageIntegrity(copy, ShortTermPassword) && StunMessage.VerifyFingerprint(copy),
                $"bit {i} flipped still verifies");
        }
    }

    [Fact]
    public void Attributes_after_MESSAGE_INTEGRITY_other_than_FINGERPRINT_are_ignored()
    {
        // Build: USERNAME, MESSAGE-INTEGRITY, PRIORITY (must be ignored), FINGERPRINT.
        var m = new StunMessage { Username = "a:b" }.Encode(ShortTermPassword, fingerprint: false);
        var withExtra = new byte[m.Length + 8];
        m.CopyTo(withExtra, 0);
        withExtra[m.Length] = 0x00; withExtra[m.Length + 1] = 0x24; withExtra[m.Length + 3] = 4; // PRIORITY, length 4
        withExtra[m.Length + 7] = 9;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(withExtra.AsSpan(2), (ushort)(withExtra.Length - 20));
        var parsed = StunMessage.Parse(withExtra);
        Assert.Equal("a:b", parsed.Username);
        Assert.Null(parsed.Priority);
        Assert.True(parsed.HasMessageIntegrity);
    }
}
