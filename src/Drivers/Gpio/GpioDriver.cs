using System.Runtime.CompilerServices;

namespace Pinhole.Drivers.Gpio;

/// <summary>
/// Access to the lines of one GPIO chip, in the spirit of <c>System.Device.Gpio.GpioDriver</c>:
/// open a line with its direction, edges and debounce, read or write it, and wait for its edges.
/// A test fake is a small subclass (see <see cref="InMemoryGpioDriver"/>).
/// </summary>
/// <remarks>The driver owns the lines it opened and releases them when disposed.</remarks>
public abstract class GpioDriver : IDisposable
{
    private bool _disposed;

    /// <summary>Requests <paramref name="line"/> from the chip with <paramref name="options"/>.</summary>
    /// <exception cref="InvalidOperationException">The line is already open in this driver.</exception>
    /// <exception cref="IOException">The chip refused the request (line busy, not supported, …).</exception>
    public void OpenLine(int line, GpioLineOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(line);
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (options.Debounce < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(options), "debounce must not be negative");
        if (options.Mode == PinMode.Output && (options.Edges != PinEventTypes.None || options.Debounce > TimeSpan.Zero))
            throw new ArgumentException("edges and debounce apply to input lines only", nameof(options));
        if (IsLineOpen(line))
            throw new InvalidOperationException($"line {line} is already open");
        OpenLineCore(line, options);
    }

    /// <summary>Releases <paramref name="line"/>; pending <see cref="WaitForEdgeAsync"/> calls fail with <see cref="OperationCanceledException"/>.</summary>
    public abstract void CloseLine(int line);

    /// <summary>Whether <paramref name="line"/> is open in this driver.</summary>
    public abstract bool IsLineOpen(int line);

    /// <summary>Reads the current level of an open line.</summary>
    public abstract PinValue Read(int line);

    /// <summary>Drives an open output line.</summary>
    public abstract void Write(int line, PinValue value);

    /// <summary>Completes with the next edge of an input line opened with edges, in order; edges that happen while nobody waits are buffered.</summary>
    public abstract ValueTask<GpioEdgeEvent> WaitForEdgeAsync(int line, CancellationToken cancellationToken);

    /// <summary>The edges of an input line as an async stream, until cancelled or the line is closed.</summary>
    public async IAsyncEnumerable<GpioEdgeEvent> ReadEdgesAsync(int line, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return await WaitForEdgeAsync(line, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Does the work of <see cref="OpenLine"/> after the arguments were checked.</summary>
    protected abstract void OpenLineCore(int line, GpioLineOptions options);

    /// <summary>Releases every open line.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the lines (and, for <paramref name="disposing"/>, managed state).</summary>
    protected virtual void Dispose(bool disposing)
    {
    }
}
