using System.Buffers;

namespace Pinhole.Transport.Tests.Support;

/// <summary>Builds multi-segment ReadOnlySequences to test parsers across buffer boundaries.</summary>
internal static class Segments
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    /// <summary>The bytes split at the given offsets (each piece copied to its own array).</summary>
    public static ReadOnlySequence<byte> Split(byte[] data, params int[] cuts)
    {
        var points = cuts.Where(c => c > 0 && c < data.Length).Distinct().Order().Prepend(0).Append(data.Length).ToArray();
        Segment? first = null, last = null;
        for (var i = 0; i + 1 < points.Length; i++)
        {
            var piece = data.AsSpan(points[i], points[i + 1] - points[i]).ToArray();
            if (first is null) first = last = new Segment(piece, 0);
            else last = last!.Append(piece);
        }
        if (first is null) return ReadOnlySequence<byte>.Empty;
        return new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }
}
