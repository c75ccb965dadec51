using System.Buffers.Binary;
using Pinhole.Transport.Stun;

namespace Pinhole.Transport.Tests.Stun;

/// <summary>
/// Malformed STUN: every truncation, every length field, random bytes and mutations must give
/// <see cref="StunProtocolException"/> (or a valid message), never another exception; the verify
/// functions must answer false, never throw.
/// </summary>
public class StunMalformedInputTests
{
    private static readonly byte[][] Vectors =
        [StunMessageTests.SampleRequest, StunMessageTests.SampleIPv4Response, StunMessageTests.SampleIPv6Response, StunMessageTests.SampleLongTermRequest];

    [Fact]
    public void Every_truncation_is_a_protocol_error()
    {
        foreach (var vector in Vectors)
        {
            for (var n = 0; n < vector.Length; n++)
            {
                var prefix = vector.AsSpan(0, n).ToArray();
                Assert.Throws<StunProtocolException>(() => StunMessage.Parse(prefix));
                Assert.False(StunMessage.VerifyFingerprint(prefix));
                StunMessage.VerifyMessageIntegrity(prefix, "key"u8); // must not throw
            }
        }
    }

    [Fact]
    public void Message_lengths_other_than_the_true_one_are_protocol_errors()
    {
        foreach (var vector in Vectors)
        {
            // Every small length, then a stride through the rest up to the 16-bit maximum.
            for (var length = 0; length <= ushort.MaxValue; length += length < 1024 ? 1 : 251)
            {
                if (length == vector.Length - 20) continue;
                var copy = (byte[])vector.Clone();
                BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(2), (ushort)length);
                Assert.Throws<StunProtocolException>(() => StunMessage.Parse(copy));
                Assert.False(StunMessage.VerifyFingerprint(copy));
            }
        }
    }

    [Fact]
    public void Every_attribute_length_field_set_to_every_value_only_raises_the_protocol_exception()
    {
        // Attribute headers of the sample request sit at these offsets (SOFTWARE, PRIORITY,
        // ICE-CONTROLLED, USERNAME, MESSAGE-INTEGRITY, FINGERPRINT).
        int[] offsets = [20, 40, 48, 60, 76, 100];
        foreach (var offset in offsets)
        {
            for (var length = 0; length <= ushort.MaxValue; length += length < 64 ? 1 : 257)
            {
                var copy = (byte[])StunMessageTests.SampleRequest.Clone();
                BinaryPrimitives.WriteUInt16BigEndian(copy.AsSpan(offset + 2), (ushort)length);
                try
                {
                    StunMessage.Parse(copy);
                }
                catch (StunProtocolException)
                {
                }
                StunMessage.VerifyMessageIntegrity(copy, "VOkJxbRl1RmTxUk/WvJxBt"u8);
                StunMessage.VerifyFingerprint(copy);
            }
        }
    }

    [Theory]
    [InlineData("0001000021120000b7e7a701bc34d686fa87dfae", "magic cookie")]
    [InlineData("c001000021120000b7e7a701bc34d686fa87dfae", "two most significant bits")]
    [InlineData("000100022112a442b7e7a701bc34d686fa87dfae0000", "multiple of 4")]
    [InlineData("000100042112a442b7e7a701bc34d686fa87dfae00240000", "PRIORITY")]
    [InlineData("000100082112a442b7e7a701bc34d686fa87dfae0025000400000000", "USE-CANDIDATE")]
    [InlineData("000100082112a442b7e7a701bc34d686fa87dfae0020000400030000", "family")]
    [InlineData("000100082112a442b7e7a701bc34d686fa87dfae8029000400000000", "ICE-CONTROLLED")]
    [InlineData("000100082112a442b7e7a701bc34d686fa87dfae0009000400000164", "ERROR-CODE")]
    [InlineData("000100082112a442b7e7a701bc34d686fa87dfae0006000280ff0000", "UTF-8")]
    [InlineData("000100102112a442b7e7a701bc34d686fa87dfae80280004000000000006000161000000", "after FINGERPRINT")]
    [InlineData("000100082112a442b7e7a701bc34d686fa87dfae0008000400000000", "MESSAGE-INTEGRITY")]
    [InlineData("000100042112a442b7e7a701bc34d686fa87dfae00060008", "runs past")]
    public void Specific_violations_name_the_broken_rule(string hex, string reason)
    {
        var bytes = Convert.FromHexString(hex);
        var e = Assert.Throws<StunProtocolException>(() => StunMessage.Parse(bytes));
        Assert.Contains(reason, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void More_attributes_than_the_limit_are_refused()
    {
        var m = new StunMessage();
        for (var i = 0; i < StunMessage.MaxAttributes + 1; i++) m.UnknownAttributes.Add(new StunAttribute(0x8050, []));
        var bytes = m.Encode(fingerprint: false);
        Assert.Throws<StunProtocolException>(() => StunMessage.Parse(bytes));
    }

    [Fact]
    public void Random_bytes_and_mutations_only_raise_the_protocol_exception()
    {
        var random = new Random(5769);
        var parsed = 0;
        var errors = 0;
        for (var round = 0; round < 20000; round++)
        {
            byte[] bytes;
            if (round % 2 == 0)
            {
                bytes = new byte[random.Next(0, 200)];
                random.NextBytes(bytes);
                if (bytes.Length >= 8 && random.Next(2) == 0) BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(4), StunMessage.MagicCookie);
                if (bytes.Length >= 4 && random.Next(2) == 0) BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(2), (ushort)(bytes.Length - 20));
                if (bytes.Length >= 1 && random.Next(2) == 0) bytes[0] &= 0x03;
            }
            else
            {
                bytes = (byte[])Vectors[random.Next(Vectors.Length)].Clone();
                for (var k = random.Next(1, 6); k > 0; k--) bytes[random.Next(20, bytes.Length)] = (byte)random.Next(256);
            }
            try
            {
                StunMessage.Parse(bytes);
                parsed++;
            }
            catch (StunProtocolException)
            {
                errors++;
            }
            StunMessage.VerifyMessageIntegrity(bytes, "VOkJxbRl1RmTxUk/WvJxBt"u8);
            StunMessage.VerifyFingerprint(bytes);
        }
        Assert.True(errors > 1000, $"only {errors} protocol errors: the fuzzer is not fuzzing");
        Assert.True(parsed > 100, $"only {parsed} parsed: mutations never kept a message valid");
    }

    [Fact]
    public void Values_too_long_for_their_attribute_are_refused_when_encoding()
    {
        Assert.Throws<InvalidOperationException>(() => new StunMessage { Username = new string('u', StunMessage.MaxUsernameLength + 1) }.Encode());
        Assert.Throws<InvalidOperationException>(() => new StunMessage { Error = (200, "OK") }.Encode());
        Assert.Throws<ArgumentException>(() => new StunMessage { TransactionId = new byte[11] });
    }
}
