using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Pinhole.Drivers.Gpio.Interop;

// The Linux GPIO character device uAPI v2, laid out exactly as <linux/gpio.h> (kernel 5.10+).
// Every struct is 8-byte aligned with explicit padding in the header, so LayoutKind.Sequential on
// both 64-bit ABIs we run on (arm64, x86_64) produces the kernel's layout; GpioV2LayoutTests
// compares sizes, offsets and ioctl numbers against a C program compiled from the header.
#pragma warning disable CA1707, IDE1006, CS8981 // names follow the kernel header

internal static class GpioV2
{
    public const int GPIO_MAX_NAME_SIZE = 32;
    public const int GPIO_V2_LINES_MAX = 64;
    public const int GPIO_V2_LINE_NUM_ATTRS_MAX = 10;

    public const ulong GPIO_V2_LINE_FLAG_USED = 1UL << 0;
    public const ulong GPIO_V2_LINE_FLAG_ACTIVE_LOW = 1UL << 1;
    public const ulong GPIO_V2_LINE_FLAG_INPUT = 1UL << 2;
    public const ulong GPIO_V2_LINE_FLAG_OUTPUT = 1UL << 3;
    public const ulong GPIO_V2_LINE_FLAG_EDGE_RISING = 1UL << 4;
    public const ulong GPIO_V2_LINE_FLAG_EDGE_FALLING = 1UL << 5;
    public const ulong GPIO_V2_LINE_FLAG_OPEN_DRAIN = 1UL << 6;
    public const ulong GPIO_V2_LINE_FLAG_OPEN_SOURCE = 1UL << 7;
    public const ulong GPIO_V2_LINE_FLAG_BIAS_PULL_UP = 1UL << 8;
    public const ulong GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN = 1UL << 9;
    public const ulong GPIO_V2_LINE_FLAG_BIAS_DISABLED = 1UL << 10;

    public const uint GPIO_V2_LINE_ATTR_ID_FLAGS = 1;
    public const uint GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES = 2;
    public const uint GPIO_V2_LINE_ATTR_ID_DEBOUNCE = 3;

    public const uint GPIO_V2_LINE_EVENT_RISING_EDGE = 1;
    public const uint GPIO_V2_LINE_EVENT_FALLING_EDGE = 2;

    // asm-generic/ioctl.h: _IOWR(type, nr, size) = (READ|WRITE) << 30 | size << 16 | type << 8 | nr.
    private static nuint IOWR(uint type, uint nr, int size) => (nuint)((3u << 30) | ((uint)size << 16) | (type << 8) | nr);

    public static readonly nuint GPIO_V2_GET_LINE_IOCTL = IOWR(0xB4, 0x07, Unsafe.SizeOf<gpio_v2_line_request>());
    public static readonly nuint GPIO_V2_LINE_SET_CONFIG_IOCTL = IOWR(0xB4, 0x0D, Unsafe.SizeOf<gpio_v2_line_config>());
    public static readonly nuint GPIO_V2_LINE_GET_VALUES_IOCTL = IOWR(0xB4, 0x0E, Unsafe.SizeOf<gpio_v2_line_values>());
    public static readonly nuint GPIO_V2_LINE_SET_VALUES_IOCTL = IOWR(0xB4, 0x0F, Unsafe.SizeOf<gpio_v2_line_values>());
}

/// <summary>struct gpio_v2_line_values (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct gpio_v2_line_values
{
    public ulong bits;
    public ulong mask;
}

/// <summary>struct gpio_v2_line_attribute (16 bytes): id, padding, then a union of flags / values / debounce_period_us.</summary>
[StructLayout(LayoutKind.Explicit, Size = 16)]
internal struct gpio_v2_line_attribute
{
    [FieldOffset(0)] public uint id;
    [FieldOffset(4)] public uint padding;
    [FieldOffset(8)] public ulong flags;
    [FieldOffset(8)] public ulong values;
    [FieldOffset(8)] public uint debounce_period_us;
}

/// <summary>struct gpio_v2_line_config_attribute (24 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct gpio_v2_line_config_attribute
{
    public gpio_v2_line_attribute attr;
    public ulong mask;
}

[InlineArray(GpioV2.GPIO_V2_LINE_NUM_ATTRS_MAX)]
internal struct gpio_v2_line_config_attribute_array
{
    private gpio_v2_line_config_attribute _element0;
}

/// <summary>struct gpio_v2_line_config (272 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct gpio_v2_line_config
{
    public ulong flags;
    public uint num_attrs;
    public fixed uint padding[5];
    public gpio_v2_line_config_attribute_array attrs;
}

/// <summary>struct gpio_v2_line_request (592 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct gpio_v2_line_request
{
    public fixed uint offsets[GpioV2.GPIO_V2_LINES_MAX];
    public fixed byte consumer[GpioV2.GPIO_MAX_NAME_SIZE];
    public gpio_v2_line_config config;
    public uint num_lines;
    public uint event_buffer_size;
    public fixed uint padding[5];
    public int fd;
}

/// <summary>struct gpio_v2_line_event (48 bytes), read from a line request fd.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct gpio_v2_line_event
{
    public ulong timestamp_ns;
    public uint id;
    public uint offset;
    public uint seqno;
    public uint line_seqno;
    public fixed uint padding[6];
}

[StructLayout(LayoutKind.Sequential)]
internal struct pollfd
{
    public int fd;
    public short events;
    public short revents;
}

internal static unsafe partial class Libc
{
    private const string Library = "libc";
    public const int O_RDWR = 2;
    public const int O_CLOEXEC = 0x80000; // 02000000 on arm64 and x86_64
    public const short POLLIN = 1;
    public const int EINTR = 4;
    public const int EAGAIN = 11;

    [LibraryImport(Library, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int open(string path, int flags);

    [LibraryImport(Library, EntryPoint = "close", SetLastError = true)]
    public static partial int close(int fd);

    [LibraryImport(Library, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int ioctl(int fd, nuint request, void* argp);

    [LibraryImport(Library, EntryPoint = "read", SetLastError = true)]
    public static partial nint read(int fd, void* buffer, nuint count);

    [LibraryImport(Library, EntryPoint = "poll", SetLastError = true)]
    public static partial int poll(pollfd* fds, nuint nfds, int timeout);

    public static string ErrorText(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
