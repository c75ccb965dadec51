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
