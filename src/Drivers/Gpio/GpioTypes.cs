namespace Pinhole.Drivers.Gpio;

/// <summary>Direction of a GPIO line.</summary>
public enum PinMode
{
    /// <summary>The line is read; it may report edge events.</summary>
    Input,

    /// <summary>The line is driven by this process.</summary>
    Output,
}

/// <summary>The logical level of a line (after active-low inversion, when requested).</summary>
public enum PinValue
{
    /// <summary>Inactive / 0.</summary>
    Low = 0,

    /// <summary>Active / 1.</summary>
    High = 1,
}

/// <summary>Which edges of an input line are reported as events.</summary>
[Flags]
public enum PinEventTypes
{
    /// <summary>No edge events.</summary>
    None = 0,

    /// <summary>Low to high.</summary>
    Rising = 1,

    /// <summary>High to low.</summary>
    Falling = 2,

    /// <summary>Both edges.</summary>
    Both = Rising | Falling,
}

/// <summary>Internal bias of an input line.</summary>
public enum PinBias
{
    /// <summary>Leave the bias as the chip has it.</summary>
    AsIs,

    /// <summary>No bias.</summary>
    Disabled,

    /// <summary>Pull up.</summary>
    PullUp,

    /// <summary>Pull down.</summary>
    PullDown,
}

/// <summary>How to open a line.</summary>
/// <param name="Mode">Input or output.</param>
/// <param name="Edges">Edges reported as events (inputs only).</param>
/// <param name="Debounce">Period the level must be stable before an edge is reported; zero disables debouncing (inputs only).</param>
/// <param name="InitialValue">Level driven when an output is opened.</param>
/// <param name="Bias">Internal pull resistor.</param>
/// <param name="ActiveLow">Invert the logical value.</param>
public sealed record GpioLineOptions(
    PinMode Mode,
    PinEventTypes Edges = PinEventTypes.None,
    TimeSpan Debounce = default,
    PinValue InitialValue = PinValue.Low,
    PinBias Bias = PinBias.AsIs,
    bool ActiveLow = false)
{
    /// <summary>An input line without edge events.</summary>
    public static GpioLineOptions Input { get; } = new(PinMode.Input);

    /// <summary>An output line, initially low.</summary>
    public static GpioLineOptions Output { get; } = new(PinMode.Output);
}

/// <summary>One edge seen on an input line.</summary>
/// <param name="Line">Line offset on its chip.</param>
/// <param name="EdgeType"><see cref="PinEventTypes.Rising"/> or <see cref="PinEventTypes.Falling"/>.</param>
/// <param name="TimestampNanoseconds">When the edge happened, in the driver's clock (the kernel's CLOCK_MONOTONIC for the character device).</param>
/// <param name="LineSequence">Per-line event counter from the driver, starting at 1; a jump means events were lost in the driver's buffer.</param>
public readonly record struct GpioEdgeEvent(int Line, PinEventTypes EdgeType, long TimestampNanoseconds, uint LineSequence)
{
    /// <summary>The level after the edge.</summary>
    public PinValue Value => EdgeType == PinEventTypes.Rising ? PinValue.High : PinValue.Low;
}
