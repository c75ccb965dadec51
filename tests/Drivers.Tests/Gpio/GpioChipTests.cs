using System.Device.Gpio;
using Pinhole.Drivers.Gpio;

namespace Pinhole.Drivers.Tests.Gpio;

public sealed class GpioChipTests
{
    [Fact]
    public void A_missing_chip_is_an_IOException_naming_it()
    {
        var e = Assert.ThrowsAny<IOException>(() => GpioChip.Open("/dev/gpiochip97"));
        Assert.Contains("/dev/gpiochip97", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_path_that_is_not_a_gpio_chip_is_refused_with_an_IOException()
    {
        var e = Assert.ThrowsAny<IOException>(() => GpioChip.Open("/dev/null"));
        Assert.Contains("/dev/null", e.Message, StringComparison.Ordinal);
        Assert.Equal(4, GpioChip.ChipNumber("/dev/gpiochip4"));
        Assert.Null(GpioChip.ChipNumber("/dev/gpiochipX"));
    }

    [NoLibgpiodFact]
    public void A_chip_without_libgpiod_is_an_IOException_that_says_what_to_install()
    {
        var dir = Directory.CreateTempSubdirectory("gpio-");
        try
        {
            var chip = Path.Combine(dir.FullName, "gpiochip0");
            File.WriteAllText(chip, "");
            var e = Assert.ThrowsAny<IOException>(() => GpioChip.Open(chip));
            Assert.Contains("libgpiod is not installed (install libgpiod2 or libgpiod3)", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            dir.Delete(true);
        }
    }

    [GpioChipFact]
    [Trait("Category", "Hardware")]
    public void Reads_an_input_line_of_a_real_chip_through_libgpiod()
    {
        var line = int.Parse(Environment.GetEnvironmentVariable("PINHOLE_TEST_GPIO_LINE") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        using var controller = GpioChip.Open(GpioChipFactAttribute.ChipPath);
        using (var watcher = new GpioInputWatcher(controller, line, PinEventTypes.Rising | PinEventTypes.Falling, TimeSpan.FromMilliseconds(10)))
        {
            Assert.True(controller.IsPinOpen(line));
            Assert.True(watcher.InitialLevel == PinValue.Low || watcher.InitialLevel == PinValue.High);
        }
        Assert.False(controller.IsPinOpen(line));
    }
}

/// <summary>A test of the edge on a device without libgpiod; skipped where libgpiod is installed.</summary>
public sealed class NoLibgpiodFactAttribute : FactAttribute
{
    public NoLibgpiodFactAttribute()
    {
        if (new[] { "libgpiod.so.2", "libgpiod.so.3" }.Any(l => System.Runtime.InteropServices.NativeLibrary.TryLoad(l, out _)))
            Skip = "libgpiod is installed here";
    }
}
