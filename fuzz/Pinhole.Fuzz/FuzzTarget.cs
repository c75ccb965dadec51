using System.Buffers;

namespace Pinhole.Fuzz;

/// <summary>
/// One fuzz target: a parser that reads untrusted bytes, and the one exception type its contract
/// allows to escape. Any other exception (or a hang, or the process dying) is a finding.
/// </summary>
/// <param name="Name">The name used on the command line and for the corpus folder (fuzz/corpus/NAME).</param>
/// <param name="Covers">What the target feeds, in a line, for docs and --help.</param>
/// <param name="Allowed">The protocol exception type the parser may throw for malformed input.</param>
/// <param name="Body">Feeds the input to the parser; may throw <paramref name="Allowed"/>.</param>
public sealed record FuzzTarget(string Name, string Covers, Type Allowed, SpanAction Body)
{
    /// <summary>Runs the body; swallows only <see cref="Allowed"/>.</summary>
    public void Run(ReadOnlySpan<byte> data)
    {
        try
        {
            Body(data);
        }
        catch (Exception e) when (Allowed.IsInstanceOfType(e))
        {
            // The parser rejected the input the way its contract says: not a finding.
        }
    }
}

/// <summary>A delegate over the fuzzer's input bytes.</summary>
public delegate void SpanAction(ReadOnlySpan<byte> data);

/// <summary>Breaks the contract on purpose: thrown by targets when a checked property fails.</summary>
public sealed class PropertyViolationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PropertyViolationException(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public PropertyViolationException() { }

    /// <summary>Creates the exception.</summary>
    public PropertyViolationException(string message, Exception inner) : base(message, inner) { }
}

/// <summary>
/// The "allowed" type of a target whose code under test never throws on any input (it answers
/// true/false instead): nothing throws it, so every exception is a finding.
/// </summary>
public sealed class NoExceptionAllowed : Exception
{
    /// <summary>Creates the exception (never done: the type only marks a contract).</summary>
    public NoExceptionAllowed() { }

    /// <summary>Creates the exception.</summary>
    public NoExceptionAllowed(string message) : base(message) { }

    /// <summary>Creates the exception.</summary>
    public NoExceptionAllowed(string message, Exception inner) : base(message, inner) { }
}

/// <summary>Builds multi-segment sequences, so parsers are fuzzed across segment boundaries too.</summary>
internal static class Segments
{
    /// <summary>The bytes as two segments split at <paramref name="at"/> (clamped to the length).</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, int at)
    {
        at = Math.Clamp(at, 0, bytes.Length);
        var first = new Segment(bytes.AsMemory(0, at), 0);
        var last = first.Append(bytes.AsMemory(at));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    /// <summary>A split point taken from the input itself, so libFuzzer can steer it.</summary>
    public static int SplitPoint(byte[] bytes) =>
        bytes.Length < 2 ? 0 : (bytes[^1] * 256 + bytes[^2]) % (bytes.Length + 1);

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
}
