using System.Collections.Concurrent;
using System.Threading.Channels;

namespace Pinhole.Drivers.Gpio;

/// <summary>
/// A GPIO chip in memory, for tests and demos: inputs are driven by <see cref="SetInputLevel"/>,
/// outputs are observed with <see cref="GetOutputLevel"/>. Edge detection and debouncing follow
/// the kernel's semantics: with a debounce period, a new level is reported only once it has been
/// stable for that period (timed by the injected <see cref="TimeProvider"/>), so bounces shorter
/// than the period produce no events.
/// </summary>
public sealed class InMemoryGpioDriver : GpioDriver
{
    private readonly TimeProvider _time;
    private readonly int _lineCount;
    private readonly Lock _lock = new();
    private readonly PinValue[] _levels; // the physical level of every line
    private readonly ConcurrentDictionary<int, LineState> _open = new();

    /// <summary>Creates a chip with <paramref name="lineCount"/> lines, all low.</summary>
    public InMemoryGpioDriver(int lineCount = 32, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lineCount);
        _lineCount = lineCount;
        _levels = new PinValue[lineCount];
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Drives the physical level of an input line from outside, as a switch or sensor would.</summary>
    public void SetInputLevel(int line, PinValue level)
    {
        CheckLine(line);
        lock (_lock)
        {
            if (_levels[line] == level) return;
            _levels[line] = level;
            if (!_open.TryGetValue(line, out var open) || open.Options.Mode != PinMode.Input || open.Options.Edges == PinEventTypes.None)
                return;
            if (open.Options.Debounce <= TimeSpan.Zero)
            {
                open.Report(Logical(open, level), _time);
                return;
            }
            // Restart the debounce timer on every change; report when it expires with the level stable.
            open.DebounceTimer?.Dispose();
            open.DebounceTimer = _time.CreateTimer(_ => Settle(line, open), null, open.Options.Debounce, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The level an output line is driving (the physical level for any line).</summary>
    public PinValue GetOutputLevel(int line)
    {
        CheckLine(line);
        lock (_lock) return _levels[line];
    }

    /// <inheritdoc />
    public override bool IsLineOpen(int line) => _open.ContainsKey(line);

    /// <inheritdoc />
    protected override void OpenLineCore(int line, GpioLineOptions options)
    {
        CheckLine(line);
        lock (_lock)
        {
            var open = new LineState(line, options);
            if (options.Mode == PinMode.Output)
                _levels[line] = options.ActiveLow ? Invert(options.InitialValue) : options.InitialValue;
            open.LastReported = Logical(open, _levels[line]);
            if (!_open.TryAdd(line, open))
                throw new InvalidOperationException($"line {line} is already open");
        }
    }

    /// <inheritdoc />
    public override void CloseLine(int line)
    {
        lock (_lock)
        {
            if (!_open.TryRemove(line, out var open)) return;
            open.DebounceTimer?.Dispose();
            open.Events.Writer.TryComplete();
        }
    }

    /// <inheritdoc />
    public override PinValue Read(int line)
    {
        var open = Get(line);
        lock (_lock) return Logical(open, _levels[line]);
    }

    /// <inheritdoc />
    public override void Write(int line, PinValue value)
    {
        var open = Get(line);
        if (open.Options.Mode != PinMode.Output)
            throw new InvalidOperationException($"line {line} is not an output");
        lock (_lock) _levels[line] = open.Options.ActiveLow ? Invert(value) : value;
    }

    /// <inheritdoc />
    public override async ValueTask<GpioEdgeEvent> WaitForEdgeAsync(int line, CancellationToken cancellationToken)
    {
        var open = Get(line);
        if (open.Options.Edges == PinEventTypes.None)
            throw new InvalidOperationException($"line {line} was not opened with edges");
        try
        {
            return await open.Events.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException e)
        {
            throw new OperationCanceledException("the line was closed", e);
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        foreach (var line in _open.Keys)
            CloseLine(line);
    }

    private void Settle(int line, LineState open)
    {
        lock (_lock)
        {
            if (!_open.TryGetValue(line, out var current) || !ReferenceEquals(current, open)) return;
            open.Report(Logical(open, _levels[line]), _time);
        }
    }

    private static PinValue Logical(LineState open, PinValue physical) => open.Options.ActiveLow ? Invert(physical) : physical;

    private static PinValue Invert(PinValue v) => v == PinValue.High ? PinValue.Low : PinValue.High;

    private void CheckLine(int line)
    {
        if ((uint)line >= (uint)_lineCount)
            throw new ArgumentOutOfRangeException(nameof(line), line, $"the chip has {_lineCount} lines");
    }

    private LineState Get(int line) =>
        _open.TryGetValue(line, out var open) ? open : throw new InvalidOperationException($"line {line} is not open");

    private sealed class LineState(int line, GpioLineOptions options)
    {
        private uint _sequence;

        public GpioLineOptions Options { get; } = options;

        public Channel<GpioEdgeEvent> Events { get; } = Channel.CreateUnbounded<GpioEdgeEvent>();

        public ITimer? DebounceTimer { get; set; }

        public PinValue LastReported { get; set; }

        // Called under the driver's lock.
        public void Report(PinValue level, TimeProvider time)
        {
            if (level == LastReported) return; // a bounce that settled back where it was
            LastReported = level;
            var type = level == PinValue.High ? PinEventTypes.Rising : PinEventTypes.Falling;
            if (!Options.Edges.HasFlag(type)) return;
            var ns = (long)(time.GetTimestamp() * (1e9 / time.TimestampFrequency));
            Events.Writer.TryWrite(new GpioEdgeEvent(line, type, ns, ++_sequence));
        }
    }
}
