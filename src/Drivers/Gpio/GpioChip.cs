using System.Device.Gpio;
using System.Device.Gpio.Drivers;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Pinhole.Drivers.Gpio;

/// <summary>
/// Opens a GPIO chip (<c>/dev/gpiochipN</c>) as a <see cref="GpioController"/> over libgpiod:
/// <see cref="LibGpiodDriver"/> when libgpiod v1 (<c>libgpiod.so.2</c>, Debian 12 package
/// <c>libgpiod2</c>) is installed, else <see cref="LibGpiodV2Driver"/> for libgpiod v2
/// (<c>libgpiod.so.3</c>, Debian 13 package <c>libgpiod3</c>). Both use the kernel's GPIO
/// character device; the deprecated sysfs interface is not used.
/// </summary>
internal static class GpioChip
{
    /// <summary>Opens <paramref name="chipPath"/>; the controller owns the driver.</summary>
    /// <exception cref="IOException">No such chip, or no libgpiod to drive it (the message says which).</exception>
    public static GpioController Open(string chipPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(chipPath);
        var number = ChipNumber(chipPath) ?? throw new IOException($"{chipPath}: not a GPIO chip path like /dev/gpiochip0");
        if (!File.Exists(chipPath))
            throw new FileNotFoundException($"{chipPath}: no such GPIO chip", chipPath);
        // The library reports a missing libgpiod as "Exception while calling libgpiod"; look first, to say what to install.
        GpioDriver driver;
        try
        {
            if (HasLibrary("libgpiod.so.2"))
                driver = new LibGpiodDriver(number);
            else if (HasLibrary("libgpiod.so.3"))
                driver = new LibGpiodV2Driver(number);
            else
                throw new IOException($"{chipPath}: libgpiod is not installed (install libgpiod2 or libgpiod3)");
        }
        catch (Exception e) when (e is ExternalException or InvalidOperationException or DllNotFoundException or PlatformNotSupportedException
            || (e is IOException && !e.Message.Contains(chipPath, StringComparison.Ordinal)))
        {
            // Name the chip: the library's messages ("Exception while calling libgpiod") do not.
            throw new IOException($"{chipPath}: {e.Message}", e);
        }
        return new GpioController(driver);
    }

    private static bool HasLibrary(string name)
    {
        if (!NativeLibrary.TryLoad(name, out var handle)) return false;
        NativeLibrary.Free(handle);
        return true;
    }

    /// <summary>The N of <c>/dev/gpiochipN</c> (symbolic links followed), or null.</summary>
    internal static int? ChipNumber(string chipPath)
    {
        var name = Path.GetFileName(chipPath);
        try
        {
            if (new FileInfo(chipPath).ResolveLinkTarget(returnFinalTarget: true) is { } target) name = target.Name;
        }
        catch (IOException)
        {
            // An unresolvable link: fall back to the name as written.
        }
        const string prefix = "gpiochip";
        return name.StartsWith(prefix, StringComparison.Ordinal) && int.TryParse(name.AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
    }
}
