using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using System.Threading.Channels;
using Pinhole.Drivers.Gpio.Interop;

namespace Pinhole.Drivers.Gpio;

/// <summary>
/// A <see cref="GpioDriver"/> over the Linux GPIO character device, uAPI v2 (kernel 5.10+), by
/// P/Invoke to libc: each opened line is one <c>GPIO_V2_GET_LINE_IOCTL</c> request whose fd is used
/// for <c>GPIO_V2_LINE_GET_VALUES_IOCTL</c> / <c>SET_VALUES</c> and, for inputs with edges, for
/// reading <c>struct gpio_v2_line_event</c> records (debounce is done by the kernel).
/// What libgpiod v2 does, without needing libgpiod installed.
/// </summary>
public sealed class GpioCdevV2Driver : GpioDriver
{
    private const string Consumer = "pinhole-edge";
    private const int PollIntervalMs = 200;

    private readonly string _chipPath;
    private readonly int _chipFd;
    private readonly ConcurrentDictionary<int, LineRequest> _lines = new();

    /// <summary>Opens the chip, for example <c>/dev/gpiochip0</c>.</summary>
    /// <exception cref="IOException">The chip cannot be opened.</exception>
    public GpioCdevV2Driver(string chipPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(chipPath);
        _chipPath = chipPath;
        _chipFd = Libc.open(chipPath, Libc.O_RDWR | Libc.O_CLOEXEC);
        if (_chipFd < 0)
            throw Error($"cannot open {chipPath}");
    }

    /// <inheritdoc />
    public override bool IsLineOpen(int line) => _lines.ContainsKey(line);

    /// <inheritdoc />
    protected override unsafe void OpenLineCore(int line, GpioLineOptions options)
    {
        var request = default(gpio_v2_line_request);
        request.offsets[0] = (uint)line;
        request.num_lines = 1;
        var consumer = Encoding.ASCII.GetBytes(Consumer);
        for (var i = 0; i < consumer.Length && i < GpioV2.GPIO_MAX_NAME_SIZE - 1; i++)
            request.consumer[i] = consumer[i];

        ulong flags = options.Mode == PinMode.Output ? GpioV2.GPIO_V2_LINE_FLAG_OUTPUT : GpioV2.GPIO_V2_LINE_FLAG_INPUT;
        if (options.ActiveLow) flags |= GpioV2.GPIO_V2_LINE_FLAG_ACTIVE_LOW;
        if (options.Edges.HasFlag(PinEventTypes.Rising)) flags |= GpioV2.GPIO_V2_LINE_FLAG_EDGE_RISING;
        if (options.Edges.HasFlag(PinEventTypes.Falling)) flags |= GpioV2.GPIO_V2_LINE_FLAG_EDGE_FALLING;
        flags |= options.Bias switch
        {
            PinBias.Disabled => GpioV2.GPIO_V2_LINE_FLAG_BIAS_DISABLED,
            PinBias.PullUp => GpioV2.GPIO_V2_LINE_FLAG_BIAS_PULL_UP,
            PinBias.PullDown => GpioV2.GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN,
            _ => 0,
        };
        request.config.flags = flags;

        // Attributes apply to the lines selected by their mask; bit 0 is the only line requested.
        uint attributes = 0;
        if (options.Mode == PinMode.Output)
        {
            ref var attr = ref request.config.attrs[(int)attributes++];
            attr.attr.id = GpioV2.GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
            attr.attr.values = options.InitialValue == PinValue.High ? 1UL : 0UL;
            attr.mask = 1;
        }
        if (options.Debounce > TimeSpan.Zero)
        {
            ref var attr = ref request.config.attrs[(int)attributes++];
            attr.attr.id = GpioV2.GPIO_V2_LINE_ATTR_ID_DEBOUNCE;
            attr.attr.debounce_period_us = (uint)Math.Min(uint.MaxValue, Math.Ceiling(options.Debounce.TotalMicroseconds));
            attr.mask = 1;
        }
        request.config.num_attrs = attributes;

        if (Libc.ioctl(_chipFd, GpioV2.GPIO_V2_GET_LINE_IOCTL, &request) < 0)
            throw Error($"cannot request line {line} of {_chipPath}");

        var lineRequest = new LineRequest(line, request.fd);
        if (!_lines.TryAdd(line, lineRequest))
        {
            lineRequest.Dispose();
            throw new InvalidOperationException($"line {line} is already open");
        }
        if (options.Edges != PinEventTypes.None)
            lineRequest.StartEventReader();
    }

    /// <inheritdoc />
    public override void CloseLine(int line)
    {
        if (_lines.TryRemove(line, out var request))
            request.Dispose();
    }

    /// <inheritdoc />
    public override unsafe PinValue Read(int line)
    {
        var request = Get(line);
        var values = new gpio_v2_line_values { mask = 1 };
        if (Libc.ioctl(request.Fd, GpioV2.GPIO_V2_LINE_GET_VALUES_IOCTL, &values) < 0)
            throw Error($"cannot read line {line} of {_chipPath}");
        return (values.bits & 1) != 0 ? PinValue.High : PinValue.Low;
    }

    /// <inheritdoc />
    public override unsafe void Write(int line, PinValue value)
    {
        var request = Get(line);
        var values = new gpio_v2_line_values { mask = 1, bits = value == PinValue.High ? 1UL : 0UL };
        if (Libc.ioctl(request.Fd, GpioV2.GPIO_V2_LINE_SET_VALUES_IOCTL, &values) < 0)
            throw Error($"cannot write line {line} of {_chipPath}");
    }

    /// <inheritdoc />
    public override ValueTask<GpioEdgeEvent> WaitForEdgeAsync(int line, CancellationToken cancellationToken)
    {
        var request = Get(line);
        if (request.Events is null)
            throw new InvalidOperationException($"line {line} was not opened with edges");
        return ReadAsync(request.Events.Reader, cancellationToken);

        static async ValueTask<GpioEdgeEvent> ReadAsync(ChannelReader<GpioEdgeEvent> reader, CancellationToken ct)
        {
            try
            {
                return await reader.ReadAsync(ct).ConfigureAwait(false);
            }
            catch (ChannelClosedException e) when (e.InnerException is null)
            {
                throw new OperationCanceledException("the line was closed", e);
            }
        }
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        foreach (var line in _lines.Keys)
            CloseLine(line);
        Libc.close(_chipFd);
    }

    private LineRequest Get(int line) =>
        _lines.TryGetValue(line, out var request) ? request : throw new InvalidOperationException($"line {line} is not open");

    private static IOException Error(string what)
    {
        var errno = Marshal.GetLastPInvokeError();
        return new IOException($"{what}: {Libc.ErrorText(errno)}", errno);
    }

    // One line request fd; for edge lines, a thread blocked in poll() copies kernel events into a
    // channel. poll() wakes every PollIntervalMs to notice a close, so no signal tricks are needed.
    private sealed class LineRequest(int line, int fd) : IDisposable
    {
        private Thread? _reader;
        private volatile bool _closing;

        public int Fd { get; } = fd;

        public Channel<GpioEdgeEvent>? Events { get; private set; }

        public void StartEventReader()
        {
            Events = Channel.CreateUnbounded<GpioEdgeEvent>(new UnboundedChannelOptions { SingleWriter = true });
            _reader = new Thread(ReadEvents) { IsBackground = true, Name = $"gpio-line-{line}" };
            _reader.Start();
        }

        private unsafe void ReadEvents()
        {
            const int batch = 16;
            var buffer = stackalloc gpio_v2_line_event[batch];
            var pfd = new pollfd { fd = Fd, events = Libc.POLLIN };
            Exception? failure = null;
            while (!_closing)
            {
                var ready = Libc.poll(&pfd, 1, PollIntervalMs);
                if (ready < 0)
                {
                    if (Marshal.GetLastPInvokeError() == Libc.EINTR) continue;
                    failure = Error($"poll on line {line}");
                    break;
                }
                if (ready == 0 || _closing) continue;
                var n = Libc.read(Fd, buffer, (nuint)(sizeof(gpio_v2_line_event) * batch));
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno is Libc.EINTR or Libc.EAGAIN) continue;
                    failure = Error($"read events of line {line}");
                    break;
                }
                var count = (int)n / sizeof(gpio_v2_line_event);
                for (var i = 0; i < count; i++)
                {
                    var e = buffer[i];
                    var type = e.id == GpioV2.GPIO_V2_LINE_EVENT_RISING_EDGE ? PinEventTypes.Rising : PinEventTypes.Falling;
                    Events!.Writer.TryWrite(new GpioEdgeEvent((int)e.offset, type, (long)e.timestamp_ns, e.line_seqno));
                }
            }
            Events!.Writer.TryComplete(failure);
        }

        public void Dispose()
        {
            _closing = true;
            _reader?.Join();
            Events?.Writer.TryComplete();
            Libc.close(Fd);
        }
    }
}
