using System.Text;
using Pinhole.Transport.Uplink;

namespace Pinhole.Transport.Tests.Uplink;

/// <summary>
/// The HTTP fallback's chunked framing (RFC 9112 §7.1, docs/uplink-protocol.md §1a): chunk-size lines read back
/// what <see cref="UplinkHttpFraming.WriteChunkHeader"/> writes, every prefix of a line is "need more bytes",
/// and sizes or lines a relay (or a proxy) should never send are refused with the protocol exception.
/// </summary>
public class UplinkHttpFramingTests
{
    [Theory]
    [InlineData(1, "1\r\n")]
    [InlineData(15, "f\r\n")]
    [InlineData(16, "10\r\n")]
    [InlineData(65542, "10006\r\n")]
    [InlineData(int.MaxValue, "7fffffff\r\n")]
    public void Chunk_headers_are_lowercase_hex_and_read_back(int length, string expected)
    {
        var buffer = new byte[16];
        var written = UplinkHttpFraming.WriteChunkHeader(buffer, length);
        Assert.Equal(expected, Encoding.ASCII.GetString(buffer, 0, written));
        Assert.Equal(written, UplinkHttpFraming.ChunkHeaderLength(length));
        Assert.True(UplinkHttpFraming.TryReadChunkHeader(buffer.AsSpan(0, written), out var size, out var consumed));
        Assert.Equal(length, size);
        Assert.Equal(written, consumed);
    }

    [Fact]
    public void A_longest_line_whose_LF_has_not_arrived_waits_for_it()
    {
        // Found by the http-chunks fuzz target: a line of exactly MaxChunkLineBytes parses once whole, so its
        // prefix ending in the CR must ask for more bytes, not be refused as too long.
        var line = Encoding.ASCII.GetBytes("5;x=" + new string('a', UplinkHttpFraming.MaxChunkLineBytes - 4) + "\r\n");
        Assert.True(UplinkHttpFraming.TryReadChunkHeader(line, out var size, out var consumed));
        Assert.Equal(5, size);
        Assert.Equal(line.Length, consumed);
        Assert.False(UplinkHttpFraming.TryReadChunkHeader(line.AsSpan(0, line.Length - 1), out _, out _));
        var tooLong = Encoding.ASCII.GetBytes("5;x=" + new string('a', UplinkHttpFraming.MaxChunkLineBytes - 3) + "\r");
        Assert.Throws<UplinkProtocolException>(() => UplinkHttpFraming.TryReadChunkHeader(tooLong, out _, out _));
    }

    [Fact]
    public void Writing_a_header_for_nothing_or_into_too_small_a_buffer_is_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => UplinkHttpFraming.ChunkHeaderLength(0));
        Assert.Throws<ArgumentException>(() => UplinkHttpFraming.WriteChunkHeader(new byte[3], 0x100));
    }

    public static TheoryData<string, int> Records() => new()
    {
        { "a\r\n0123456789\r\n", 10 },
        { "A;name=value\r\n0123456789\r\n", 10 },   // extensions are skipped (§7.1.1)
        { "1f \t;x\r\n" + new string('x', 31) + "\r\n", 31 },
        { "0\r\n\r\n", 0 },
        { "0\r\nExpires: never\r\n\r\n", 0 },
    };

    [Theory]
    [MemberData(nameof(Records))]
    public void Every_prefix_of_a_record_needs_more_bytes_and_the_whole_reads(string record, int expectedSize)
    {
        var bytes = Encoding.ASCII.GetBytes(record);
        var lineEnd = record.IndexOf("\r\n", StringComparison.Ordinal) + 2;
        for (var i = 0; i < lineEnd; i++)
        {
            Assert.False(UplinkHttpFraming.TryReadChunkHeader(bytes.AsSpan(0, i), out _, out var consumed), $"prefix of {i} bytes");
            Assert.Equal(0, consumed);
        }
        for (var i = lineEnd; i <= bytes.Length; i++)
        {
            Assert.True(UplinkHttpFraming.TryReadChunkHeader(bytes.AsSpan(0, i), out var size, out var consumed), $"prefix of {i} bytes");
            Assert.Equal(expectedSize, size);
            Assert.Equal(lineEnd, consumed);
        }
        if (expectedSize > 0)
        {
            Assert.True(bytes.AsSpan(lineEnd + expectedSize).SequenceEqual(UplinkHttpFraming.ChunkEnd));
            return;
        }
        // The last chunk: trailer lines up to the empty one, each a "need more" until its CRLF is in.
        var at = lineEnd;
        var lines = 0;
        while (true)
        {
            var rest = bytes.AsSpan(at);
            var end = rest.IndexOf("\r\n"u8) + 2;
            for (var i = 0; i < end; i++) Assert.False(UplinkHttpFraming.TryReadTrailerLine(rest[..i], out _, out _), $"trailer prefix of {i} bytes");
            Assert.True(UplinkHttpFraming.TryReadTrailerLine(rest, out var last, out var consumed));
            Assert.Equal(end, consumed);
            at += consumed;
            lines++;
            if (last) break;
        }
        Assert.Equal(bytes.Length, at);
        Assert.Equal(record.Contains("Expires", StringComparison.Ordinal) ? 2 : 1, lines);
    }

    [Theory]
    [InlineData("80000000\r\n")]   // 2 GiB: one more than int.MaxValue
    [InlineData("ffffffff\r\n")]
    public void Sizes_above_two_GiB_are_refused(string line)
    {
        var e = Assert.Throws<UplinkProtocolException>(() => UplinkHttpFraming.TryReadChunkHeader(Encoding.ASCII.GetBytes(line), out _, out _));
        Assert.Contains("2 GiB", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("100000000\r\n")]  // nine digits: more than 32 bits
    [InlineData("000000001\r\n")]  // nine digits even when small (the limit is on digits, so no overflow is possible)
    [InlineData("\r\n")]
    [InlineData(";ext\r\n")]
    [InlineData("-1\r\n")]
    [InlineData("0x10\r\n")]
    [InlineData("1 0\r\n")]
    [InlineData("g\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\n")]
    [InlineData("\u00e9\r\n")]
    public void Garbage_chunk_size_lines_are_refused(string line)
    {
        var e = Assert.Throws<UplinkProtocolException>(() => UplinkHttpFraming.TryReadChunkHeader(Encoding.Latin1.GetBytes(line), out _, out _));
        Assert.Contains("chunk size", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_chunk_line_longer_than_the_limit_is_refused_before_its_end_arrives()
    {
        // Without a CRLF: refused as soon as more than the limit is buffered, rather than waited for forever.
        var noEnd = Encoding.ASCII.GetBytes("1;" + new string('x', UplinkHttpFraming.MaxChunkLineBytes));
        Assert.False(UplinkHttpFraming.TryReadChunkHeader(noEnd.AsSpan(0, UplinkHttpFraming.MaxChunkLineBytes), out _, out _));
        Assert.Throws<UplinkProtocolException>(() => UplinkHttpFraming.TryReadChunkHeader(noEnd, out _, out _));
        // With a CRLF beyond the limit: refused too.
        var late = Encoding.ASCII.GetBytes("1;" + new string('x', UplinkHttpFraming.MaxChunkLineBytes) + "\r\n");
        Assert.Throws<UplinkProtocolException>(() => UplinkHttpFraming.TryReadChunkHeader(late, out _, out _));
        // Just within it: read.
        var within = Encoding.ASCII.GetBytes("1;" + new string('x', UplinkHttpFraming.MaxChunkLineBytes - 2) + "\r\n");
        Assert.True(UplinkHttpFraming.TryReadChunkHeader(within, out var size, out _));
        Assert.Equal(1, size);
    }

    [Fact]
    public void A_trailer_section_that_never_ends_is_refused()
    {
        var endless = Encoding.ASCII.GetBytes("X-" + new string('y', UplinkHttpFraming.MaxTrailerLineBytes));
        Assert.Throws<UplinkProtocolException>(() => UplinkHttpFraming.TryReadTrailerLine(endless, out _, out _));
    }

    [Fact]
    public void A_trailer_line_has_the_same_limit_whole_or_in_pieces()
    {
        var longest = Encoding.ASCII.GetBytes(new string('t', UplinkHttpFraming.MaxTrailerLineBytes) + "\r\n");
        Assert.False(UplinkHttpFraming.TryReadTrailerLine(longest.AsSpan(0, longest.Length - 1), out _, out _));
        Assert.True(UplinkHttpFraming.TryReadTrailerLine(longest, out var last, out var consumed));
        Assert.False(last);
        Assert.Equal(longest.Length, consumed);

        var tooLong = Encoding.ASCII.GetBytes(new string('t', UplinkHttpFraming.MaxTrailerLineBytes + 1) + "\r\n");
        Assert.Throws<UplinkProtocolException>(() => UplinkHttpFraming.TryReadTrailerLine(tooLong, out _, out _));
    }
}
