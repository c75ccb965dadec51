using System.Device.Gpio;
using System.Threading.Channels;

namespace Pinhole.Drivers.Gpio;

/// <summary>
/// Watches one input line of a <see cref="GpioController"/>: its edges, debounced in software (the
/// controller's drivers offer no debounce), become a stream of levels. With a debounce period a new
/// level is reported only once it has been stable for that period, timed by the injected
/// <see cref="TimeProvider"/>, so bounces shorter than the period produce nothing; a bounce that
/// settles back where it was produces nothing either.
/// </summary>
/// <remarks>Opens the line as an input when created and closes it when disposed; the controller stays the caller's.</remarks>
public sealed class GpioInputWatcher : IDisposable
{
    private readonly GpioController _controller;
    private readonly int _pin;
    private readonly PinEventTypes _edges;
    private readonly TimeSpan _debounce;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Channel<PinValue> _levels = Channel.CreateUnbounded<PinValue>(new UnboundedChannelOptions { SingleReader = true });
    private ITimer? _debounceTimer;
    private PinValue _lastReported;
    private bool _disposed;

    /// <summary>Opens <paramref name="pin"/> as an input and starts watching <paramref name="edges"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="edges"/> is <see cref="PinEventTypes.None"/> or <paramref name="debounce"/> is negative.</exception>
    public GpioInputWatcher(GpioController controller, int pin, PinEventTypes edges, TimeSpan debounce, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(controller);
        if ((edges & (PinEventTypes.Rising | PinEventTypes.Falling)) == 0)
            throw new ArgumentException("watch rising, falling or both edges", nameof(edges));
        ArgumentOutOfRangeException.ThrowIfLessThan(debounce, TimeSpan.Zero);
        _controller = controller;
        _pin = pin;
        _edges = edges;
        _debounce = debounce;
        _time = timeProvider ?? TimeProvider.System;
        controller.OpenPin(pin, PinMode.Input);
        try
        {
            _lastReported = controller.Read(pin);
            InitialLevel = _lastReported;
            // Both edges, always: a debounced level is decided by what the line settles at, not by the last edge's direction.
            controller.RegisterCallbackForPinValueChangedEvent(pin, PinEventTypes.Rising | PinEventTypes.Falling, OnEdge);
        }
        catch
        {
            controller.ClosePin(pin);
            throw;
        }
    }

    /// <summary>The level when the line was opened.</summary>
    public PinValue InitialLevel { get; }

    /// <summary>The reported (debounced) levels, in order, until disposed.</summary>
    public ChannelReader<PinValue> Levels => _levels.Reader;

    private void OnEdge(object sender, PinValueChangedEventArgs e)
    {
        lock (_lock)
        {
            if (_disposed) return;
            if (_debounce <= TimeSpan.Zero)
            {
                Report(e.ChangeType == PinEventTypes.Rising ? PinValue.High : PinValue.Low);
                return;
            }
            // Restart the debounce timer on every edge; report when it expires with the level stable.
            // One timer per watcher, re-armed: a bouncing contact makes many edges.
            if (_debounceTimer is null) _debounceTimer = _time.CreateTimer(_ => Settle(), null, _debounce, Timeout.InfiniteTimeSpan);
            else _debounceTimer.Change(_debounce, Timeout.InfiniteTimeSpan);
        }
    }

    private void Settle()
    {
        PinValue level;
        try
        {
            level = _controller.Read(_pin);
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException)
        {
            _levels.Writer.TryComplete(e as IOException ?? new IOException($"cannot read line {_pin}: {e.Message}", e));
            return;
        }
        lock (_lock)
        {
            if (!_disposed) Report(level);
        }
    }

    // Called under the lock.
    private void Report(PinValue level)
    {
        if (level == _lastReported) return;
        _lastReported = level;
        var edge = level == PinValue.High ? PinEventTypes.Rising : PinEventTypes.Falling;
        if ((_edges & edge) != 0) _levels.Writer.TryWrite(level);
    }

    /// <summary>Stops watching and closes the line.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _debounceTimer?.Dispose();
        }
        _levels.Writer.TryComplete();
        try
        {
            _controller.UnregisterCallbackForPinValueChangedEvent(_pin, OnEdge);
            _controller.ClosePin(_pin);
        }
        catch (Exception e) when (e is InvalidOperationException or IOException or ObjectDisposedException)
        {
            // The controller (or its chip) is already gone; nothing left to release.
        }
    }
}
