using System.Buffers;
using System.Text;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtsp;

public class RtspParserTests
{
    private static byte[] Ascii(string s) => Encoding.ASCII.GetBytes(s);

    private static RtspMessage ParseOne(ReadOnlySequence<byte> data, out long consumed)
    {
        var reader = new SequenceReader<byte>(data);
        Assert.True(RtspParser.TryParseMessage(ref reader, out var message));
        consumed = reader.Consumed;
        return message;
    }

    [Fact]
    public void Real_GStreamer_DESCRIBE_response_parses_with_headers_and_SDP_body()
    {
        var bytes = Captures.Bytes("h264-aac.describe.bin");
        var response = Assert.IsType<RtspResponse>(ParseOne(new ReadOnlySequence<byte>(bytes), out var consumed));
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal(200, response.StatusCode);
        Assert.Equal("OK", response.ReasonPhrase);
        Assert.Equal(2, response.CSeq);
        Assert.Equal("application/sdp", response.Headers["content-type"]);
        Assert.StartsWith("rtsp://127.0.0.1:", response.Headers["Content-Base"], StringComparison.Ordinal);
        Assert.Equal(int.Parse(response.Headers["Content-Length"]!, System.Globalization.CultureInfo.InvariantCulture), response.Body.Length);
        Assert.StartsWith("v=0", response.BodyText, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("h264-aac.describe.bin")]
    [InlineData("h265.describe.bin")]
    [InlineData("digest.401.bin")]
    public void Every_prefix_needs_more_bytes_and_consumes_nothing(string file)
    {
        var bytes = Captures.Bytes(file);
        for (var n = 0; n < bytes.Length; n++)
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, n));
            Assert.False(RtspParser.TryParseMessage(ref reader, out _), $"prefix {n} parsed");
            Assert.Equal(0, reader.Consumed);
        }
    }

    [Theory]
    [InlineData("h264-aac.describe.bin")]
    [InlineData("digest.401.bin")]
    public void Every_split_into_two_and_three_segments_parses_the_same(string file)
    {
        var bytes = Captures.Bytes(file);
        var expected = RtspWriter.ToBytes(ParseOne(new ReadOnlySequence<byte>(bytes), out _));
        for (var i = 1; i < bytes.Length; i++)
        {
            Assert.Equal(expected, RtspWriter.ToBytes(ParseOne(Segments.Split(bytes, i), out var consumed)));
            Assert.Equal(bytes.Length, consumed);
            var j = (i * 7 + 3) % bytes.Length; // a second cut spread over the message
            Assert.Equal(expected, RtspWriter.ToBytes(ParseOne(Segments.Split(bytes, i, j), out _)));
        }
    }

    [Fact]
    public void Request_round_trips_through_writer_and_parser()
    {
        var request = new RtspRequest("SETUP", "rtsp://cam/stream/trackID=1") { CSeq = 7 };
        request.Headers.Add("Transport", "RTP/AVP/TCP;unicast;interleaved=2-3");
        request.Headers.Add("X-Repeat", "a");
        request.Headers.Add("X-Repeat", "b");
        request.Body = Ascii("hello");
        var bytes = RtspWriter.ToBytes(request);
        var parsed = Assert.IsType<RtspRequest>(ParseOne(new ReadOnlySequence<byte>(bytes), out var consumed));
        Assert.Equal(bytes.Length, consumed);
        Assert.Equal(("SETUP", "rtsp://cam/stream/trackID=1", 7), (parsed.Method, parsed.Uri, parsed.CSeq));
        Assert.Equal(new[] { "a", "b" }, parsed.Headers.GetValues("x-repeat"));
        Assert.Equal("hello", parsed.BodyText);
        Assert.Equal(bytes, RtspWriter.ToBytes(parsed));
    }

    [Fact]
    public void Two_messages_back_to_back_parse_one_at_a_time()
    {
        var bytes = Ascii("RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\nRTSP/1.0 404 Not Found\r\nCSeq: 2\r\n\r\n");
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.True(RtspParser.TryParseMessage(ref reader, out var a));
        Assert.True(RtspParser.TryParseMessage(ref reader, out var b));
        Assert.Equal((1, 2), (a.CSeq, b.CSeq));
        Assert.Equal(404, ((RtspResponse)b).StatusCode);
        Assert.Equal(0, reader.Remaining);
    }

    [Fact]
    public void Folded_header_lines_and_bare_LF_are_accepted()
    {
        var m = ParseOne(new ReadOnlySequence<byte>(Ascii("RTSP/1.0 200 OK\nCSeq: 3\nPublic: OPTIONS,\r\n  DESCRIBE\n\n")), out _);
        Assert.Equal("OPTIONS, DESCRIBE", m.Headers["Public"]);
        Assert.Equal(3, m.CSeq);
    }

    [Theory]
    [InlineData("RTSP/1.0 2000 OK\r\n\r\n", "status")]
    [InlineData("RTSP/1.0 OK\r\n\r\n", "status")]
    [InlineData("RTSP/2.0 200 OK\r\n\r\n", "version")]
    [InlineData("HTTP/1.1 200 OK\r\n\r\n", "token")]
    [InlineData("GET / HTTP/1.1\r\n\r\n", "not an RTSP")]
    [InlineData("DESCRIBE rtsp://x\r\n\r\n", "request line")]
    [InlineData("DESC(RIBE rtsp://x RTSP/1.0\r\n\r\n", "token")]
    [InlineData("RTSP/1.0 200 OK\r\nNoColon\r\n\r\n", "colon")]
    [InlineData("RTSP/1.0 200 OK\r\n: empty\r\n\r\n", "colon")]
    [InlineData("RTSP/1.0 200 OK\r\nCSeq: 1\0\r\n\r\n", "control")]
    [InlineData("RTSP/1.0 200 OK\r\nContent-Length: -1\r\n\r\n", "Content-Length")]
    [InlineData("RTSP/1.0 200 OK\r\nContent-Length: 12x\r\n\r\n", "Content-Length")]
    [InlineData("RTSP/1.0 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "limit")]
    [InlineData(" continued: x\r\n\r\n", "request line")]
    public void Malformed_messages_throw_the_protocol_exception_with_a_reason(string text, string reason)
    {
        var e = Assert.Throws<RtspProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Ascii(text)));
            RtspParser.TryParseMessage(ref reader, out _);
        });
        Assert.Contains(reason, e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Body_limit_is_checked_before_the_body_arrives()
    {
        // Only the header block is here; a parser that buffered first would just say "need more".
        var limits = new RtspParserLimits { MaxBodyBytes = 1000 };
        var e = Assert.Throws<RtspProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Ascii("RTSP/1.0 200 OK\r\nContent-Length: 1001\r\n\r\n")));
            RtspParser.TryParseMessage(ref reader, out _, limits);
        });
        Assert.Contains("1001", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Endless_header_block_throws_once_it_passes_the_limit_without_a_line_end()
    {
        var limits = new RtspParserLimits { MaxHeaderBytes = 4096 };
        var data = Ascii("RTSP/1.0 200 OK\r\nX: " + new string('a', 5000));
        Assert.Throws<RtspProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(data));
            RtspParser.TryParseMessage(ref reader, out _, limits);
        });
        // Below the limit it is just incomplete.
        var shortReader = new SequenceReader<byte>(new ReadOnlySequence<byte>(data, 0, 3000));
        Assert.False(RtspParser.TryParseMessage(ref shortReader, out _, limits));
    }

    [Fact]
    public void Too_many_header_lines_throw()
    {
        var sb = new StringBuilder("RTSP/1.0 200 OK\r\n");
        for (var i = 0; i < 65; i++) sb.Append("X-").Append(i).Append(": v\r\n");
        sb.Append("\r\n");
        Assert.Throws<RtspProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Ascii(sb.ToString())));
            RtspParser.TryParseMessage(ref reader, out _);
        });
    }

    [Fact]
    public void Real_interleaved_stream_gives_the_PLAY_response_then_frames_on_the_SETUP_channels()
    {
        var (messages, frames) = Captures.Stream("h264-aac");
        var play = Assert.IsType<RtspResponse>(Assert.Single(messages));
        Assert.Equal(200, play.StatusCode);
        Assert.NotNull(play.Headers["RTP-Info"]);
        Assert.True(frames.Count > 100, $"{frames.Count} frames");
        Assert.All(frames, f => Assert.InRange(f.Channel, 0, 3));
        Assert.Contains(frames, f => f.Channel == 0);
        Assert.Contains(frames, f => f.Channel == 2);
    }

    [Fact]
    public void Real_interleaved_stream_parses_identically_when_cut_into_pieces_everywhere()
    {
        var bytes = Captures.Bytes("pcma.stream.bin");
        var expected = Captures.Stream("pcma").Frames;
        // Feed the stream like a socket would: in chunks of every size from 1 to 40, keeping the unconsumed rest.
        foreach (var chunk in new[] { 1, 2, 3, 5, 7, 13, 40, 1000 })
        {
            var got = new List<InterleavedFrame>();
            var pending = Array.Empty<byte>();
            for (var offset = 0; offset < bytes.Length; offset += chunk)
            {
                var piece = bytes.AsSpan(offset, Math.Min(chunk, bytes.Length - offset)).ToArray();
                var data = Segments.Split(pending.Concat(piece).ToArray(), pending.Length);
                var reader = new SequenceReader<byte>(data);
                while (RtspParser.TryParse(ref reader, out var m, out var f))
                    if (m is null) got.Add(f);
                pending = reader.UnreadSequence.ToArray();
            }
            Assert.Equal(expected.Count, got.Count);
            for (var i = 0; i < got.Count; i++)
            {
                Assert.Equal(expected[i].Channel, got[i].Channel);
                Assert.True(expected[i].Payload.Span.SequenceEqual(got[i].Payload.Span));
            }
        }
    }

    [Fact]
    public void Interleaved_frame_every_prefix_is_incomplete_and_round_trips()
    {
        var payload = Enumerable.Range(0, 300).Select(i => (byte)i).ToArray();
        var buffer = new ArrayBufferWriter<byte>();
        InterleavedFrame.Write(buffer, 3, payload);
        var bytes = buffer.WrittenSpan.ToArray();
        Assert.Equal(304, bytes.Length);
        for (var n = 0; n < bytes.Length; n++)
        {
            var r = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, n));
            Assert.False(RtspParser.TryParse(ref r, out _, out _));
            Assert.Equal(0, r.Consumed);
        }
        for (var cut = 1; cut < bytes.Length; cut += 17)
        {
            var r = new SequenceReader<byte>(Segments.Split(bytes, cut, cut + 1));
            Assert.True(RtspParser.TryParse(ref r, out var m, out var f));
            Assert.Null(m);
            Assert.Equal(3, f.Channel);
            Assert.Equal(payload, f.Payload.ToArray());
        }
    }

    [Fact]
    public void Interleaved_frame_length_only_says_need_more_and_never_allocates_it_early()
    {
        // '$' channel 0 length 65535 and 10 bytes: incomplete, nothing consumed.
        var bytes = new byte[] { (byte)'$', 0, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
        var r = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.False(RtspParser.TryParse(ref r, out _, out _));
        Assert.Equal(0, r.Consumed);
    }

    [Fact]
    public void Message_right_after_a_frame_is_found()
    {
        var buffer = new ArrayBufferWriter<byte>();
        InterleavedFrame.Write(buffer, 1, [9, 9]);
        RtspWriter.Write(new RtspResponse(200, "OK") { CSeq = 5 }, buffer);
        InterleavedFrame.Write(buffer, 0, [8]);
        var r = new SequenceReader<byte>(new ReadOnlySequence<byte>(buffer.WrittenMemory));
        Assert.True(RtspParser.TryParse(ref r, out var m1, out var f1));
        Assert.Null(m1);
        Assert.Equal(1, f1.Channel);
        Assert.True(RtspParser.TryParse(ref r, out var m2, out _));
        Assert.Equal(5, m2!.CSeq);
        Assert.True(RtspParser.TryParse(ref r, out var m3, out var f3));
        Assert.Null(m3);
        Assert.Equal(new byte[] { 8 }, f3.Payload.ToArray());
    }
}
