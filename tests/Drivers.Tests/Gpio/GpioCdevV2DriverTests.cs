using Pinhole.Drivers.Gpio;

namespace Pinhole.Drivers.Tests.Gpio;

public sealed class GpioCdevV2DriverTests
{
    [Fact]
    public void A_missing_chip_is_an_IOException_naming_it()
    {
        var e = Assert.Throws<IOException>(() => new GpioCdevV2Driver("/dev/gpiochip-does-not-exist"));
        Assert.Contains("/dev/gpiochip-does-not-exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_device_that_is_not_a_gpio_chip_refuses_the_line_request_with_an_IOException()
    {
        // /dev/null accepts open() but answers GPIO_V2_GET_LINE_IOCTL with ENOTTY: this exercises
        // the real P/Invoke path (open, ioctl, errno, close) on a machine without GPIO.
        using var driver = new GpioCdevV2Driver("/dev/null");
        var e = Assert.Throws<IOException>(() => driver.OpenLine(3, GpioLineOptions.Input));
        Assert.Contains("line 3", e.Message, StringComparison.Ordinal);
        Assert.False(driver.IsLineOpen(3));
    }

    [GpioChipFact]
    [Trait("Category", "Hardware")]
    public void Reads_an_input_line_of_a_real_chip()
    {
        var line = int.Parse(Environment.GetEnvironmentVariable("PINHOLE_TEST_GPIO_LINE") ?? "0", System.Globalization.CultureInfo.InvariantCulture);
        using var driver = new GpioCdevV2Driver(GpioChipFactAttribute.ChipPath);
        driver.OpenLine(line, new GpioLineOptions(PinMode.Input, PinEventTypes.Both, TimeSpan.FromMilliseconds(10)));
        Assert.True(driver.IsLineOpen(line));
        Assert.True(driver.Read(line) is PinValue.Low or PinValue.High);
        driver.CloseLine(line);
        Assert.False(driver.IsLineOpen(line));
    }
}
