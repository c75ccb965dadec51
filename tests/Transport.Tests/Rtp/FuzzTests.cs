using Pinhole.Transport.Media;
using System.Buffers;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;
using Pinhole.Transport.Tests.Support;

namespace Pinhole.Transport.Tests.Rtp;

/// <summary>
/// Mutation fuzzing from the real captures: corrupted bytes must only ever produce
/// <see cref="MediaFormatException"/> (or be tolerated), never another exception, a hang or a huge allocation.
/// </summary>
public class FuzzTests
{
    [Theory]
    [InlineData("h264-aac", 1)]
    [InlineData("h265", 2)]
    [InlineData("pcma", 3)]
    public void Corrupted_RTP_payloads_only_raise_the_protocol_exception(string capture, int seed)
    {
        var random = new Random(seed);
        var sdp = Captures.Sdp(capture);
        var frames = Captures.Stream(capture).Frames.Where(f => f.Channel % 2 == 0).ToList();
        var protocolErrors = 0;
        for (var round = 0; round < 40; round++)
        {
            var deps = new RtpDepacketizer?[sdp.Media.Count];
            for (var i = 0; i < deps.Length; i++) RtpDepacketizerFactory.TryCreate(sdp.Media[i], i, out deps[i]);
            var output = new CollectingOutput();
            foreach (var f in frames)
            {
                var bytes = f.Payload.ToArray();
                var flips = random.Next(0, 4);
                for (var k = 0; k < flips; k++) bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
                if (random.Next(20) == 0) bytes = bytes.AsSpan(0, random.Next(bytes.Length)).ToArray(); // truncated
                try
                {
                    deps[f.Channel / 2]!.Push(RtpPacket.Parse(bytes), output);
                }
                catch (MediaFormatException)
                {
                    protocolErrors++;
                }
            }
            // Whatever got through is well-formed AVCC for video.
            foreach (var (track, unit) in output.Items.Where(i => i.Track.IsVideo))
            {
                var d = unit.Data.Span;
                while (d.Length > 0)
                {
                    var n = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(d);
                    Assert.InRange(n, 1, d.Length - 4);
                    d = d[(4 + n)..];
                }
            }
        }
        Assert.True(protocolErrors > 0, "the fuzzer never hit a protocol error: it is not fuzzing");
    }

    [Fact]
    public void Corrupted_RTSP_streams_only_raise_the_protocol_exception_and_never_buffer_more_than_the_limits()
    {
        var random = new Random(99);
        var original = Captures.Bytes("h264-aac.describe.bin").Concat(Captures.Bytes("h264-aac.stream.bin")).ToArray();
        var errors = 0;
        for (var round = 0; round < 300; round++)
        {
            var bytes = (byte[])original.Clone();
            for (var k = 0; k < 1 + random.Next(8); k++) bytes[random.Next(Math.Min(bytes.Length, 3000))] = (byte)random.Next(256);
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            try
            {
                while (RtspParser.TryParse(ref reader, out var m, out _))
                    if (m is RtspResponse r && r.Body.Length > 0) SessionDescription.Parse(r.BodyText);
            }
            catch (MediaFormatException)
            {
                errors++;
            }
            Assert.True(reader.Remaining < 256 * 1024 + 16 * 1024, "parser asked for more than its limits allow");
        }
        Assert.True(errors > 0);
    }

    [Fact]
    public void Random_SDP_and_auth_headers_only_raise_the_protocol_exception()
    {
        var random = new Random(5);
        var sdp = Captures.Describe("h264-aac").BodyText;
        for (var i = 0; i < 2000; i++)
        {
            var chars = sdp.ToCharArray();
            for (var k = 0; k < 1 + random.Next(5); k++) chars[random.Next(chars.Length)] = (char)random.Next(32, 127);
            try
            {
                var parsed = SessionDescription.Parse(new string(chars));
                for (var m = 0; m < parsed.Media.Count; m++) RtpDepacketizerFactory.TryCreate(parsed.Media[m], m, out _);
            }
            catch (MediaFormatException) { }
            var header = "Digest realm=\"GStreamer\", nonce=\"0834a8\", qop=\"auth\"".ToCharArray();
            header[random.Next(header.Length)] = (char)random.Next(32, 127);
            try { HttpAuthChallenge.ParseAll([new string(header)]); }
            catch (MediaFormatException) { }
        }
    }
}
