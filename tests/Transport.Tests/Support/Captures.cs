using System.Buffers;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;
using Pinhole.Transport.Sdp;

namespace Pinhole.Transport.Tests.Support;

/// <summary>Loads the real captures in Captures/ (see Captures/README.md).</summary>
internal static class Captures
{
    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Captures");

    public static byte[] Bytes(string file) => File.ReadAllBytes(Path.Combine(Dir, file));

    public static RtspResponse Describe(string name)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(name + ".describe.bin")));
        Assert.True(RtspParser.TryParseMessage(ref reader, out var message));
        return Assert.IsType<RtspResponse>(message);
    }

    public static SessionDescription Sdp(string name) => SessionDescription.Parse(Describe(name).BodyText);

    /// <summary>Every message and frame of NAME.stream.bin, parsed in one go.</summary>
    public static (List<RtspMessage> Messages, List<InterleavedFrame> Frames) Stream(string name)
    {
        var messages = new List<RtspMessage>();
        var frames = new List<InterleavedFrame>();
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Bytes(name + ".stream.bin")));
        while (RtspParser.TryParse(ref reader, out var m, out var f))
        {
            if (m is not null) messages.Add(m);
            else frames.Add(f);
        }
        // The capture stops at an arbitrary byte: at most one partial frame remains.
        Assert.True(reader.Remaining < 65536 + 4);
        return (messages, frames);
    }

    /// <summary>Depacketizes track <paramref name="track"/> of a capture (its RTP is on channel 2*track).</summary>
    public static (RtpDepacketizer Depacketizer, CollectingOutput Output) Depacketize(string name, int track)
    {
        var sdp = Sdp(name);
        Assert.True(RtpDepacketizerFactory.TryCreate(sdp.Media[track], track, out var dep));
        var output = new CollectingOutput();
        foreach (var f in Stream(name).Frames.Where(f => f.Channel == 2 * track))
            dep!.Push(RtpPacket.Parse(f.Payload), output);
        return (dep!, output);
    }
}

internal sealed class CollectingOutput : IAccessUnitOutput
{
    public List<(TrackInfo Track, AccessUnit Unit)> Items { get; } = [];

    public List<AccessUnit> Units => Items.Select(i => i.Unit).ToList();

    public void OnAccessUnit(TrackInfo track, in AccessUnit unit) => Items.Add((track, unit));
}
