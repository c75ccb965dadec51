using Pinhole.Drivers.Gpio;
using Pinhole.Testing.Time;

namespace Pinhole.Drivers.Tests.Gpio;

public sealed class InMemoryGpioDriverTests
{
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task Both_edges_are_reported_in_order_with_their_level()
    {
        using var driver = new InMemoryGpioDriver(8);
        driver.OpenLine(5, new GpioLineOptions(PinMode.Input, PinEventTypes.Both));
        driver.SetInputLevel(5, PinValue.High);
        driver.SetInputLevel(5, PinValue.Low);
        driver.SetInputLevel(5, PinValue.High);

        using var cts = new CancellationTokenSource(Soon);
        var events = new List<GpioEdgeEvent>();
        for (var i = 0; i < 3; i++) events.Add(await driver.WaitForEdgeAsync(5, cts.Token));
        Assert.Equal([PinEventTypes.Rising, PinEventTypes.Falling, PinEventTypes.Rising], events.Select(e => e.EdgeType));
        Assert.Equal([PinValue.High, PinValue.Low, PinValue.High], events.Select(e => e.Value));
        Assert.Equal([1u, 2u, 3u], events.Select(e => e.LineSequence));
        Assert.All(events, e => Assert.Equal(5, e.Line));
        Assert.Equal(PinValue.High, driver.Read(5));
    }

    [Fact]
    public async Task Only_the_requested_edge_is_reported()
    {
        using var driver = new InMemoryGpioDriver(8);
        driver.OpenLine(1, new GpioLineOptions(PinMode.Input, PinEventTypes.Falling));
        driver.SetInputLevel(1, PinValue.High);
        driver.SetInputLevel(1, PinValue.Low);
        driver.SetInputLevel(1, PinValue.High);
        driver.SetInputLevel(1, PinValue.Low);
        using var cts = new CancellationTokenSource(Soon);
        Assert.Equal(PinEventTypes.Falling, (await driver.WaitForEdgeAsync(1, cts.Token)).EdgeType);
        Assert.Equal(PinEventTypes.Falling, (await driver.WaitForEdgeAsync(1, cts.Token)).EdgeType);
        using var none = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await driver.WaitForEdgeAsync(1, none.Token));
    }

    [Fact]
    public async Task Debounce_swallows_bounces_shorter_than_the_period_and_reports_the_settled_level()
    {
        var time = new ManualTimeProvider();
        using var driver = new InMemoryGpioDriver(8, time);
        driver.OpenLine(2, new GpioLineOptions(PinMode.Input, PinEventTypes.Both, TimeSpan.FromMilliseconds(20)));

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
        using var early = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var first = await driver.WaitForEdgeAsync(2, early.Token);
        Assert.Equal(PinEventTypes.Rising, first.EdgeType);
        Assert.Equal(1u, first.LineSequence);
        using var notYet = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await driver.WaitForEdgeAsync(2, notYet.Token));
        time.Advance(TimeSpan.FromMilliseconds(1));
        using var cts = new CancellationTokenSource(Soon);
        var second = await driver.WaitForEdgeAsync(2, cts.Token);
        Assert.Equal(PinEventTypes.Falling, second.EdgeType);
        Assert.Equal(2u, second.LineSequence);
    }

    [Fact]
    public void Outputs_drive_the_line_with_their_initial_value_and_writes()
    {
        using var driver = new InMemoryGpioDriver(4);
        driver.OpenLine(0, GpioLineOptions.Output with { InitialValue = PinValue.High });
        Assert.Equal(PinValue.High, driver.GetOutputLevel(0));
        driver.Write(0, PinValue.Low);
        Assert.Equal(PinValue.Low, driver.GetOutputLevel(0));
        Assert.Equal(PinValue.Low, driver.Read(0));
        driver.OpenLine(1, GpioLineOptions.Output with { ActiveLow = true });
        driver.Write(1, PinValue.High);
        Assert.Equal(PinValue.Low, driver.GetOutputLevel(1));
    }

    [Fact]
    public void Misuse_is_refused()
    {
        using var driver = new InMemoryGpioDriver(4);
        Assert.Throws<InvalidOperationException>(() => driver.Read(0));
        driver.OpenLine(0, GpioLineOptions.Input);
        Assert.Throws<InvalidOperationException>(() => driver.OpenLine(0, GpioLineOptions.Input));
        Assert.Throws<InvalidOperationException>(() => driver.Write(0, PinValue.High));
        Assert.Throws<ArgumentException>(() => driver.OpenLine(1, GpioLineOptions.Output with { Edges = PinEventTypes.Both }));
        Assert.Throws<ArgumentOutOfRangeException>(() => driver.OpenLine(9, GpioLineOptions.Input));
    }

    [Fact]
    public async Task Closing_a_line_ends_its_edge_stream()
    {
        using var driver = new InMemoryGpioDriver(4);
        driver.OpenLine(3, new GpioLineOptions(PinMode.Input, PinEventTypes.Both));
        var seen = new List<PinValue>();
        var reader = Task.Run(async () =>
        {
            await foreach (var e in driver.ReadEdgesAsync(3))
                seen.Add(e.Value);
        });
        driver.SetInputLevel(3, PinValue.High);
        driver.SetInputLevel(3, PinValue.Low);
        while (seen.Count < 2) await Task.Delay(5);
        driver.CloseLine(3);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => reader.WaitAsync(Soon));
        Assert.Equal([PinValue.High, PinValue.Low], seen);
    }
}
