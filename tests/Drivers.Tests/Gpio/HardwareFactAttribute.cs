namespace Pinhole.Drivers.Tests.Gpio;

/// <summary>A test that needs a real GPIO chip (PINHOLE_TEST_GPIOCHIP, default /dev/gpiochip0); skipped where there is none.</summary>
public sealed class GpioChipFactAttribute : FactAttribute
{
    public static string ChipPath => Environment.GetEnvironmentVariable("PINHOLE_TEST_GPIOCHIP") ?? "/dev/gpiochip0";

    public GpioChipFactAttribute()
    {
        if (!File.Exists(ChipPath))
            Skip = $"no GPIO chip at {ChipPath} (set PINHOLE_TEST_GPIOCHIP)";
    }
}
