using System.Device.Gpio;
using Pinhole.Drivers.Gpio;
using Pinhole.Testing.Time;

namespace Pinhole.Drivers.Tests.Gpio;

/// <summary>The in-memory chip under System.Device.Gpio's <see cref="GpioController"/>, and the debounced watcher on top.</summary>
public sealed class InMemoryGpioDriverTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(5);

    private static async Task<List<PinValue>> TakeAsync(GpioInputWatcher watcher, int count, TimeSpan within)
    {
        using var cts = new CancellationTokenSource(within);
        var levels = new List<PinValue>();
        while (levels.Count < count) levels.Add(await watcher.Levels.ReadAsync(cts.Token));
        return levels;
    }

    [Fact]
    public async Task Both_edges_are_reported_in_order_with_their_level()
    {
        var driver = new InMemoryGpioDriver(8);
        using var controller = new GpioController(driver);
        using var watcher = new GpioInputWatcher(controller, 5, PinEventTypes.Rising | PinEventTypes.Falling, TimeSpan.Zero);
        Assert.Equal(PinValue.Low, watcher.InitialLevel);
        driver.SetInputLevel(5, PinValue.High);
        driver.SetInputLevel(5, PinValue.Low);
        driver.SetInputLevel(5, PinValue.High);

        Assert.Equal([PinValue.High, PinValue.Low, PinValue.High], await TakeAsync(watcher, 3, Soon));
        Assert.Equal(PinValue.High, controller.Read(5));
    }

    [Fact]
    public async Task Only_the_requested_edge_is_reported()
    {
        var driver = new InMemoryGpioDriver(8);
        using var controller = new GpioController(driver);
        using var watcher = new GpioInputWatcher(controller, 1, PinEventTypes.Falling, TimeSpan.Zero);
        driver.SetInputLevel(1, PinValue.High);
        driver.SetInputLevel(1, PinValue.Low);
        driver.SetInputLevel(1, PinValue.High);
        driver.SetInputLevel(1, PinValue.Low);
        Assert.Equal([PinValue.Low, PinValue.Low], await TakeAsync(watcher, 2, Soon));
        using var none = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await watcher.Levels.ReadAsync(none.Token));
    }

    [Fact]
    public async Task Debounce_swallows_bounces_shorter_than_the_period_and_reports_the_settled_level()
    {
        var time = new ManualTimeProvider();
        var driver = new InMemoryGpioDriver(8);
        using var controller = new GpioController(driver);
        using var watcher = new GpioInputWatcher(controller, 2, PinEventTypes.Rising | PinEventTypes.Falling, TimeSpan.FromMilliseconds(20), time);

        // A contact closing: bounces every 3 ms, then stays high.
        foreach (var level in new[] { PinValue.High, PinValue.Low, PinValue.High, PinValue.Low, PinValue.High })
        {
            driver.SetInputLevel(2, level);
            time.Advance(TimeSpan.FromMilliseconds(3));
        }
        // A 5 ms glitch low that comes back high: no event at all.
        time.Advance(TimeSpan.FromMilliseconds(30));
        driver.SetInputLevel(2, PinValue.Low);
        time.Advance(TimeSpan.FromMilliseconds(5));
        driver.SetInputLevel(2, PinValue.High);
        time.Advance(TimeSpan.FromMilliseconds(30));
        // Then a clean open.
        driver.SetInputLevel(2, PinValue.Low);
        time.Advance(TimeSpan.FromMilliseconds(19));
        Assert.Equal([PinValue.High], await TakeAsync(watcher, 1, TimeSpan.FromMilliseconds(500)));
        using var notYet = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await watcher.Levels.ReadAsync(notYet.Token));
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal([PinValue.Low], await TakeAsync(watcher, 1, Soon));
    }

    [Fact]
    public void Outputs_drive_the_line_with_their_initial_value_and_writes()
    {
        var driver = new InMemoryGpioDriver(4);
        using var controller = new GpioController(driver);
        controller.OpenPin(0, PinMode.Output, PinValue.High);
        Assert.Equal(PinValue.High, driver.GetOutputLevel(0));
        controller.Write(0, PinValue.Low);
        Assert.Equal(PinValue.Low, driver.GetOutputLevel(0));
        Assert.Equal(PinValue.Low, controller.Read(0));
    }

    [Fact]
    public void Misuse_is_refused()
    {
        var driver = new InMemoryGpioDriver(4);
        using var controller = new GpioController(driver);
        Assert.Throws<InvalidOperationException>(() => controller.Read(0));
        controller.OpenPin(0, PinMode.Input);
        // Writing an input is the controller's business (it remembers the value for later); the line does not move.
        controller.Write(0, PinValue.High);
        Assert.Equal(PinValue.Low, driver.GetOutputLevel(0));
        Assert.ThrowsAny<ArgumentException>(() => new GpioInputWatcher(controller, 1, PinEventTypes.None, TimeSpan.Zero));
        Assert.ThrowsAny<ArgumentException>(() => controller.OpenPin(9, PinMode.Input));
    }

    [Fact]
    public async Task Disposing_the_watcher_ends_its_stream_and_closes_the_line()
    {
        var driver = new InMemoryGpioDriver(4);
        using var controller = new GpioController(driver);
        var watcher = new GpioInputWatcher(controller, 3, PinEventTypes.Rising | PinEventTypes.Falling, TimeSpan.Zero);
        var seen = new List<PinValue>();
        var reader = Task.Run(async () =>
        {
            await foreach (var level in watcher.Levels.ReadAllAsync())
                seen.Add(level);
        });
        driver.SetInputLevel(3, PinValue.High);
        driver.SetInputLevel(3, PinValue.Low);
        while (seen.Count < 2) await Task.Delay(5);
        Assert.True(driver.IsLineOpen(3));
        watcher.Dispose();
        await reader.WaitAsync(Soon);
        Assert.Equal([PinValue.High, PinValue.Low], seen);
        Assert.False(driver.IsLineOpen(3));
    }
}
