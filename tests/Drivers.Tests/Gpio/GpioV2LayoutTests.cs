using System.Diagnostics;
using System.Runtime.CompilerServices;
using Pinhole.Drivers.Gpio.Interop;

namespace Pinhole.Drivers.Tests.Gpio;

// The structs cross into the kernel by ioctl: one byte off and the kernel reads garbage or
// rejects the request. These tests pin them to the kernel's layout two ways: numbers worked out
// from <linux/gpio.h> by hand, and (where gcc and the header exist) a C program printing sizeof,
// offsetof and the ioctl numbers, compiled from the real header.
public sealed unsafe class GpioV2LayoutTests
{
    private static readonly Dictionary<string, long> Ours = Measure();

    [Theory]
    [InlineData("sizeof(struct gpio_v2_line_request)", 592)]
    [InlineData("sizeof(struct gpio_v2_line_config)", 272)]
    [InlineData("sizeof(struct gpio_v2_line_attribute)", 16)]
    [InlineData("sizeof(struct gpio_v2_line_config_attribute)", 24)]
    [InlineData("sizeof(struct gpio_v2_line_event)", 48)]
    [InlineData("sizeof(struct gpio_v2_line_values)", 16)]
    [InlineData("offsetof(struct gpio_v2_line_request, consumer)", 256)]
    [InlineData("offsetof(struct gpio_v2_line_request, config)", 288)]
    [InlineData("offsetof(struct gpio_v2_line_request, num_lines)", 560)]
    [InlineData("offsetof(struct gpio_v2_line_request, event_buffer_size)", 564)]
    [InlineData("offsetof(struct gpio_v2_line_request, fd)", 588)]
    [InlineData("offsetof(struct gpio_v2_line_config, num_attrs)", 8)]
    [InlineData("offsetof(struct gpio_v2_line_config, attrs)", 32)]
    [InlineData("offsetof(struct gpio_v2_line_attribute, flags)", 8)]
    [InlineData("offsetof(struct gpio_v2_line_attribute, debounce_period_us)", 8)]
    [InlineData("offsetof(struct gpio_v2_line_config_attribute, mask)", 16)]
    [InlineData("offsetof(struct gpio_v2_line_event, id)", 8)]
    [InlineData("offsetof(struct gpio_v2_line_event, offset)", 12)]
    [InlineData("offsetof(struct gpio_v2_line_event, seqno)", 16)]
    [InlineData("offsetof(struct gpio_v2_line_event, line_seqno)", 20)]
    [InlineData("offsetof(struct gpio_v2_line_values, mask)", 8)]
    [InlineData("GPIO_V2_GET_LINE_IOCTL", 0xC250B407L)]
    [InlineData("GPIO_V2_LINE_GET_VALUES_IOCTL", 0xC010B40EL)]
    [InlineData("GPIO_V2_LINE_SET_VALUES_IOCTL", 0xC010B40FL)]
    [InlineData("GPIO_V2_LINE_SET_CONFIG_IOCTL", 0xC110B40DL)]
    public void Layout_matches_linux_gpio_h(string what, long expected) =>
        Assert.Equal(expected, Ours[what]);

    [Fact]
    public void Layout_matches_a_C_program_compiled_from_the_installed_header()
    {
        if (!File.Exists("/usr/include/linux/gpio.h") || FindOnPath("gcc") is null)
            return; // the hand-checked numbers above still hold the layout in place
        var dir = Directory.CreateTempSubdirectory("gpio-layout-");
        try
        {
            var c = Path.Combine(dir.FullName, "layout.c");
            var exe = Path.Combine(dir.FullName, "layout");
            var lines = Ours.Keys.Select(k => $"    printf(\"%s=%llu\\n\", \"{k}\", (unsigned long long)({k}));");
            File.WriteAllText(c, "#include <stdio.h>\n#include <stddef.h>\n#include <linux/gpio.h>\nint main(void) {\n" + string.Join('\n', lines) + "\n    return 0;\n}\n");
            Run("gcc", $"-o {exe} {c}");
            var kernel = Run(exe, "").Split('\n', StringSplitOptions.RemoveEmptyEntries)
                .Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => long.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(Ours.Count, kernel.Count);
            foreach (var (key, value) in kernel)
                Assert.True(Ours[key] == value, $"{key}: kernel {value}, ours {Ours[key]}");
        }
        finally
        {
            dir.Delete(true);
        }
    }

    private static Dictionary<string, long> Measure()
    {
        var request = default(gpio_v2_line_request);
        var config = default(gpio_v2_line_config);
        var attribute = default(gpio_v2_line_attribute);
        var configAttribute = default(gpio_v2_line_config_attribute);
        var lineEvent = default(gpio_v2_line_event);
        var values = default(gpio_v2_line_values);
        static long Off(void* field, void* start) => (byte*)field - (byte*)start;
        return new Dictionary<string, long>
        {
            ["sizeof(struct gpio_v2_line_request)"] = Unsafe.SizeOf<gpio_v2_line_request>(),
            ["sizeof(struct gpio_v2_line_config)"] = Unsafe.SizeOf<gpio_v2_line_config>(),
            ["sizeof(struct gpio_v2_line_attribute)"] = Unsafe.SizeOf<gpio_v2_line_attribute>(),
            ["sizeof(struct gpio_v2_line_config_attribute)"] = Unsafe.SizeOf<gpio_v2_line_config_attribute>(),
            ["sizeof(struct gpio_v2_line_event)"] = Unsafe.SizeOf<gpio_v2_line_event>(),
            ["sizeof(struct gpio_v2_line_values)"] = Unsafe.SizeOf<gpio_v2_line_values>(),
            ["offsetof(struct gpio_v2_line_request, consumer)"] = Off(request.consumer, &request),
            ["offsetof(struct gpio_v2_line_request, config)"] = Off(&request.config, &request),
            ["offsetof(struct gpio_v2_line_request, num_lines)"] = Off(&request.num_lines, &request),
            ["offsetof(struct gpio_v2_line_request, event_buffer_size)"] = Off(&request.event_buffer_size, &request),
            ["offsetof(struct gpio_v2_line_request, fd)"] = Off(&request.fd, &request),
            ["offsetof(struct gpio_v2_line_config, num_attrs)"] = Off(&config.num_attrs, &config),
            ["offsetof(struct gpio_v2_line_config, attrs)"] = Off(&config.attrs, &config),
            ["offsetof(struct gpio_v2_line_attribute, flags)"] = Off(&attribute.flags, &attribute),
            ["offsetof(struct gpio_v2_line_attribute, debounce_period_us)"] = Off(&attribute.debounce_period_us, &attribute),
            ["offsetof(struct gpio_v2_line_config_attribute, mask)"] = Off(&configAttribute.mask, &configAttribute),
            ["offsetof(struct gpio_v2_line_event, id)"] = Off(&lineEvent.id, &lineEvent),
            ["offsetof(struct gpio_v2_line_event, offset)"] = Off(&lineEvent.offset, &lineEvent),
            ["offsetof(struct gpio_v2_line_event, seqno)"] = Off(&lineEvent.seqno, &lineEvent),
            ["offsetof(struct gpio_v2_line_event, line_seqno)"] = Off(&lineEvent.line_seqno, &lineEvent),
            ["offsetof(struct gpio_v2_line_values, mask)"] = Off(&values.mask, &values),
            ["GPIO_V2_GET_LINE_IOCTL"] = (long)GpioV2.GPIO_V2_GET_LINE_IOCTL,
            ["GPIO_V2_LINE_GET_VALUES_IOCTL"] = (long)GpioV2.GPIO_V2_LINE_GET_VALUES_IOCTL,
            ["GPIO_V2_LINE_SET_VALUES_IOCTL"] = (long)GpioV2.GPIO_V2_LINE_SET_VALUES_IOCTL,
            ["GPIO_V2_LINE_SET_CONFIG_IOCTL"] = (long)GpioV2.GPIO_V2_LINE_SET_CONFIG_IOCTL,
        };
    }

    private static string? FindOnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':')
            .Select(d => Path.Combine(d, tool)).FirstOrDefault(File.Exists);

    private static string Run(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var stdout = p.StandardOutput.ReadToEnd();
        var stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {args} failed: {stderr}");
        return stdout;
    }
}
