using System.Device.Gpio;

namespace Pinhole.Drivers.Gpio;

/// <summary>
/// A GPIO chip in memory, for tests and demos: a <see cref="GpioDriver"/> of System.Device.Gpio, so
/// it runs under a <see cref="GpioController"/> exactly where a libgpiod driver would. Inputs are
/// driven by <see cref="SetInputLevel"/> (which raises the registered edge callbacks and completes
/// waiting <see cref="WaitForEvent"/> calls); outputs are observed with <see cref="GetOutputLevel"/>.
/// Like the hardware, it has no debounce: bounces are edges (see <see cref="GpioInputWatcher"/>).
/// </summary>
internal sealed class InMemoryGpioDriver : GpioDriver
{
    private readonly Lock _lock = new();
    private readonly PinValue[] _levels; // the physical level of every line
    private readonly Dictionary<int, PinMode> _open = [];
    private readonly Dictionary<int, List<(PinEventTypes Types, PinChangeEventHandler Callback)>> _callbacks = [];
    private readonly Dictionary<int, List<(PinEventTypes Types, TaskCompletionSource<PinEventTypes> Waiter)>> _waiters = [];

    /// <summary>Creates a chip with <paramref name="lineCount"/> lines, all low.</summary>
    public InMemoryGpioDriver(int lineCount = 32)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(lineCount);
        _levels = new PinValue[lineCount];
        Array.Fill(_levels, PinValue.Low);
    }

    /// <summary>Whether <paramref name="pin"/> is open (the controller closes what it opened when disposed).</summary>
    public bool IsLineOpen(int pin)
    {
        lock (_lock) return _open.ContainsKey(pin);
    }

    /// <summary>Drives the physical level of a line from outside, as a switch or sensor would; an input with callbacks sees the edge.</summary>
    public void SetInputLevel(int pin, PinValue level)
    {
        CheckPin(pin);
        List<PinChangeEventHandler> toCall = [];
        lock (_lock)
        {
            if (_levels[pin] == level) return;
            _levels[pin] = level;
            if (!_open.TryGetValue(pin, out var mode) || mode == PinMode.Output) return;
            var edge = level == PinValue.High ? PinEventTypes.Rising : PinEventTypes.Falling;
            if (_callbacks.TryGetValue(pin, out var callbacks))
                toCall.AddRange(callbacks.Where(c => c.Types.HasFlag(edge)).Select(c => c.Callback));
            if (_waiters.TryGetValue(pin, out var waiters))
            {
                foreach (var w in waiters.Where(w => w.Types.HasFlag(edge)).ToList())
                {
                    waiters.Remove(w);
                    w.Waiter.TrySetResult(edge);
                }
            }
        }
        // Outside the lock, as a driver's event thread would call them.
        var args = new PinValueChangedEventArgs(level == PinValue.High ? PinEventTypes.Rising : PinEventTypes.Falling, pin);
        foreach (var callback in toCall) callback(this, args);
    }

    /// <summary>The level a line is at (what an output drives).</summary>
    public PinValue GetOutputLevel(int pin)
    {
        CheckPin(pin);
        lock (_lock) return _levels[pin];
    }

    /// <inheritdoc />
    protected override int PinCount => _levels.Length;

    /// <inheritdoc />
    protected override void OpenPin(int pinNumber)
    {
        CheckPin(pinNumber);
        lock (_lock)
        {
            if (!_open.TryAdd(pinNumber, PinMode.Input))
                throw new InvalidOperationException($"line {pinNumber} is already open");
        }
    }

    /// <inheritdoc />
    protected override void ClosePin(int pinNumber)
    {
        lock (_lock)
        {
            _open.Remove(pinNumber);
            _callbacks.Remove(pinNumber);
            if (_waiters.Remove(pinNumber, out var waiters))
                foreach (var w in waiters) w.Waiter.TrySetCanceled();
        }
    }

    /// <inheritdoc />
    protected override void SetPinMode(int pinNumber, PinMode mode)
    {
        lock (_lock)
        {
            if (!_open.ContainsKey(pinNumber)) throw new InvalidOperationException($"line {pinNumber} is not open");
            _open[pinNumber] = mode;
        }
    }

    /// <inheritdoc />
    protected override void SetPinMode(int pinNumber, PinMode mode, PinValue initialValue)
    {
        SetPinMode(pinNumber, mode);
        if (mode == PinMode.Output) Write(pinNumber, initialValue);
    }

    /// <inheritdoc />
    protected override PinMode GetPinMode(int pinNumber)
    {
        lock (_lock) return _open.TryGetValue(pinNumber, out var mode) ? mode : throw new InvalidOperationException($"line {pinNumber} is not open");
    }

    /// <inheritdoc />
    protected override bool IsPinModeSupported(int pinNumber, PinMode mode) => mode is PinMode.Input or PinMode.Output or PinMode.InputPullUp or PinMode.InputPullDown;

    /// <inheritdoc />
    protected override PinValue Read(int pinNumber)
    {
        CheckPin(pinNumber);
        lock (_lock) return _levels[pinNumber];
    }

    /// <inheritdoc />
    protected override void Write(int pinNumber, PinValue value)
    {
        CheckPin(pinNumber);
        lock (_lock)
        {
            if (!_open.TryGetValue(pinNumber, out var mode) || mode != PinMode.Output)
                throw new InvalidOperationException($"line {pinNumber} is not an output");
            _levels[pinNumber] = value;
        }
    }

    /// <inheritdoc />
    protected override WaitForEventResult WaitForEvent(int pinNumber, PinEventTypes eventTypes, CancellationToken cancellationToken)
    {
        var waiter = new TaskCompletionSource<PinEventTypes>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (!_waiters.TryGetValue(pinNumber, out var list)) _waiters[pinNumber] = list = [];
            list.Add((eventTypes, waiter));
        }
        try
        {
            return new WaitForEventResult { EventTypes = waiter.Task.WaitAsync(cancellationToken).GetAwaiter().GetResult(), TimedOut = false };
        }
        catch (OperationCanceledException)
        {
            lock (_lock) if (_waiters.TryGetValue(pinNumber, out var list)) list.RemoveAll(w => w.Waiter == waiter);
            return new WaitForEventResult { EventTypes = PinEventTypes.None, TimedOut = true };
        }
    }

    /// <inheritdoc />
    protected override void AddCallbackForPinValueChangedEvent(int pinNumber, PinEventTypes eventTypes, PinChangeEventHandler callback)
    {
        lock (_lock)
        {
            if (!_open.ContainsKey(pinNumber)) throw new InvalidOperationException($"line {pinNumber} is not open");
            if (!_callbacks.TryGetValue(pinNumber, out var list)) _callbacks[pinNumber] = list = [];
            list.Add((eventTypes, callback));
        }
    }

    /// <inheritdoc />
    protected override void RemoveCallbackForPinValueChangedEvent(int pinNumber, PinChangeEventHandler callback)
    {
        lock (_lock)
            if (_callbacks.TryGetValue(pinNumber, out var list)) list.RemoveAll(c => c.Callback == callback);
    }

    private void CheckPin(int pin)
    {
        if ((uint)pin >= (uint)_levels.Length)
            throw new ArgumentOutOfRangeException(nameof(pin), pin, $"the chip has {_levels.Length} lines");
    }
}
