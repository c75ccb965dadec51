using Pinhole.Transport.WebSockets;

namespace Pinhole.Transport.Tests.WebSockets;

public class WebSocketFramingTests
{
    [Fact]
    public void Accept_key_matches_the_rfc_example_exactly()
    {
        // RFC 6455 §1.3's worked example.
        Assert.Equal("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", WebSocketFraming.ComputeAccept("dGhlIHNhbXBsZSBub25jZQ=="));
    }

    [Theory]
    [InlineData(0, 6)]
    [InlineData(125, 6)]
    [InlineData(126, 8)]
    [InlineData(65535, 8)]
    [InlineData(65536, 14)]
    [InlineData(5_000_000, 14)]
    public void Client_headers_round_trip_with_the_shortest_length_encoding(long length, int headerLength)
    {
        var buffer = new byte[WebSocketFraming.MaxClientHeaderLength];
        var written = WebSocketFraming.WriteClientHeader(buffer, WebSocketOpcode.Binary, length, 0xA1B2C3D4);

        Assert.Equal(headerLength, written);
        Assert.Equal(headerLength, WebSocketFraming.ClientHeaderLength(length));
        for (var prefix = 0; prefix < written; prefix++)
            Assert.False(WebSocketFraming.TryReadHeader(buffer.AsSpan(0, prefix), out _), $"{prefix} bytes of a {written}-byte header");
        Assert.True(WebSocketFraming.TryReadHeader(buffer.AsSpan(0, written), out var header));
        Assert.Equal(new WebSocketFrameHeader(true, WebSocketOpcode.Binary, length, headerLength, true, 0xA1B2C3D4), header);
        // The key lies on the wire in the order it is applied (§5.3).
        Assert.Equal(new byte[] { 0xA1, 0xB2, 0xC3, 0xD4 }, buffer[(written - 4)..written]);
    }

    [Fact]
    public void Unmasked_server_header_parses()
    {
        // A server's 300-byte binary frame, FIN clear: 0x02, 126, 0x01 0x2C.
        Assert.True(WebSocketFraming.TryReadHeader(new byte[] { 0x02, 126, 0x01, 0x2C }, out var header));
        Assert.Equal(new WebSocketFrameHeader(false, WebSocketOpcode.Binary, 300, 4, false, 0), header);
        Assert.False(header.IsControl);
    }

    [Theory]
    [InlineData(new byte[] { 0xC2, 0x00 }, "reserved bits")]
    [InlineData(new byte[] { 0x83, 0x00 }, "unknown opcode 0x3")]
    [InlineData(new byte[] { 0x8B, 0x00 }, "unknown opcode 0xB")]
    [InlineData(new byte[] { 0x09, 0x00 }, "fragmented")]
    [InlineData(new byte[] { 0x82, 126, 0x00, 0x7D }, "a 16-bit length for a payload that fits in 7 bits")]
    [InlineData(new byte[] { 0x89, 126, 0x00, 0x7E }, "Ping frame of 126 bytes")]
    [InlineData(new byte[] { 0x88, 126, 0x00, 0x80 }, "Close frame of 128 bytes")]
    [InlineData(new byte[] { 0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0 }, "most significant bit")]
    [InlineData(new byte[] { 0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF }, "fits in 16 bits")]
    public void Malformed_headers_are_refused_with_the_rule_they_break(byte[] bytes, string reason)
    {
        var e = Assert.Throws<WebSocketFramingException>(() => WebSocketFraming.TryReadHeader(bytes, out _));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Masking_matches_the_byte_by_byte_rule_at_every_length_and_offset()
    {
        var random = new Random(6455);
        for (var length = 0; length < 70; length++)
        {
            for (var offset = 0; offset < 8; offset++)
            {
                var data = new byte[length];
                random.NextBytes(data);
                var key = (uint)random.Next() ^ ((uint)random.Next() << 16);
                var expected = (byte[])data.Clone();
                var k = new[] { (byte)(key >> 24), (byte)(key >> 16), (byte)(key >> 8), (byte)key };
                for (var i = 0; i < length; i++) expected[i] ^= k[(i + offset) % 4];

                WebSocketFraming.Mask(data, key, offset);

                Assert.Equal(expected, data);
            }
        }
    }

    [Fact]
    public void Masking_a_payload_in_any_two_pieces_equals_masking_it_whole_and_twice_restores_it()
    {
        var original = new byte[257];
        new Random(7).NextBytes(original);
        var whole = (byte[])original.Clone();
        WebSocketFraming.Mask(whole, 0x01020304);
        for (var split = 0; split <= original.Length; split++)
        {
            var pieces = (byte[])original.Clone();
            WebSocketFraming.Mask(pieces.AsSpan(0, split), 0x01020304, 0);
            WebSocketFraming.Mask(pieces.AsSpan(split), 0x01020304, split);
            Assert.Equal(whole, pieces);
        }
        WebSocketFraming.Mask(whole, 0x01020304);
        Assert.Equal(original, whole);
    }
}
