using System.Device.Gpio;
using System.Diagnostics;

namespace Pinhole.Drivers.Tests.Sensors;

/// <summary>
/// A GPIO chip with a DHT22 on one line. The binding polls the line in loops bounded by a count of
/// reads, timing only the high phase of each bit (at most 30 µs is a 0, longer a 1). So the answer is
/// scripted per read rather than per microsecond: after the host releases the line (switches it to
/// input), reads return the response (low, high), then per bit a low and a high phase whose reads
/// take about 60 µs each for a 1 and return at once for a 0, then the line idles high.
/// </summary>
internal sealed class FakeDht22Driver(int pin, byte[] answer) : GpioDriver
{
    private static readonly TimeSpan OneBitRead = TimeSpan.FromMicroseconds(60);
    private readonly Queue<(PinValue Level, bool Slow)> _script = new();
    private readonly Dictionary<int, PinMode> _modes = [];

    public int Answers { get; private set; }

    protected override int PinCount => 32;

    protected override void OpenPin(int pinNumber) => _modes[pinNumber] = PinMode.Input;

    protected override void ClosePin(int pinNumber) => _modes.Remove(pinNumber);

    protected override void SetPinMode(int pinNumber, PinMode mode)
    {
        var wasOutput = _modes.GetValueOrDefault(pinNumber) == PinMode.Output;
        _modes[pinNumber] = mode;
        if (pinNumber == pin && wasOutput && mode is PinMode.Input or PinMode.InputPullUp)
            Answer();
    }

    protected override PinMode GetPinMode(int pinNumber) => _modes[pinNumber];

    protected override bool IsPinModeSupported(int pinNumber, PinMode mode) => mode is PinMode.Input or PinMode.InputPullUp or PinMode.Output;

    protected override PinValue Read(int pinNumber)
    {
        if (pinNumber != pin || !_script.TryDequeue(out var step)) return PinValue.High;
        if (step.Slow)
        {
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < OneBitRead) Thread.SpinWait(20);
        }
        return step.Level;
    }

    protected override void Write(int pinNumber, PinValue value)
    {
    }

    protected override WaitForEventResult WaitForEvent(int pinNumber, PinEventTypes eventTypes, CancellationToken cancellationToken) =>
        throw new NotSupportedException();

    protected override void AddCallbackForPinValueChangedEvent(int pinNumber, PinEventTypes eventTypes, PinChangeEventHandler callback) =>
        throw new NotSupportedException();

    protected override void RemoveCallbackForPinValueChangedEvent(int pinNumber, PinChangeEventHandler callback) =>
        throw new NotSupportedException();

    private void Answer()
    {
        Answers++;
        _script.Clear();
        // Response: ~80 µs low, ~80 µs high.
        _script.Enqueue((PinValue.Low, false));
        _script.Enqueue((PinValue.Low, false));
        _script.Enqueue((PinValue.High, false));
        _script.Enqueue((PinValue.High, false));
        foreach (var b in answer)
        {
            for (var bit = 7; bit >= 0; bit--)
            {
                _script.Enqueue((PinValue.Low, false)); // ~50 µs start of bit
                _script.Enqueue((PinValue.Low, false));
                var one = ((b >> bit) & 1) == 1;
                _script.Enqueue((PinValue.High, one)); // 26-28 µs for a 0, 70 µs for a 1
                if (one) _script.Enqueue((PinValue.High, true));
            }
        }
        _script.Enqueue((PinValue.Low, false)); // ends the last bit
    }
}
