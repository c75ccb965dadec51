using System.Text.Json.Nodes;
using OpenQA.Selenium;
using Pinhole.Testing;
using Xunit.Abstractions;

namespace Pinhole.Integration.Tests.Telemetry;

// Headless Chromium on /devices/gw1/sensors of the real relay, fed by the real edge through Mosquitto:
// the chart has data and grows while it watches; an alert threshold crossed by the test shows on the
// dashboard and the device list, and is published retained on pinhole/gw1/alerts/fast.
[Collection(EndToEnd.EndToEnd.Collection)]
public sealed class SensorDashboardTests(ITestOutputHelper output)
{
    private const string Readings = "return Number((document.querySelector('section.sensor[data-sensor=fast]') || {dataset: {}}).dataset.readings || 0);";

    [RequiresFact(Needs.Mosquitto | Needs.Chromium)]
    public async Task Chromium_sees_the_chart_grow_and_an_alert_raised_and_cleared()
    {
        await using var stack = await TelemetryHistoryStack.StartAsync(output,
            alerts: [new { device = "*", sensor = TelemetryHistoryStack.Sensor, above = 25, @for = "1s" }]);
        stack.PinnedRawValue = 21_000;
        await stack.StartEdgeAsync();
        using var browser = Chromium.Start();

        // Not logged in: sent to the form, which brings us back to the dashboard.
        browser.Navigate(new Uri(stack.HttpUri, "/devices/gw1/sensors"));
        Assert.Contains("/login?next=", browser.Driver.Url, StringComparison.Ordinal);
        browser.Driver.FindElement(By.Name("user")).SendKeys(EndToEnd.EndToEnd.ViewerUser);
        browser.Driver.FindElement(By.Name("password")).SendKeys(EndToEnd.EndToEnd.ViewerPassword);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
        await browser.WaitForAsync("document.querySelector('section.sensor[data-sensor=fast] canvas') !== null", TimeSpan.FromSeconds(30));
        Assert.EndsWith("/devices/gw1/sensors", browser.Driver.Url, StringComparison.Ordinal);

        // The chart grows while we watch, without reloading the page.
        browser.Execute("window.samePage = 'yes'; return 0;");
        var first = browser.Execute<long>(Readings);
        await Task.Delay(TimeSpan.FromSeconds(6));
        var later = browser.Execute<long>(Readings);
        output.WriteLine($"chart held {first} readings, 6 s later {later}");
        Assert.True(later >= first + 20, $"the chart went from {first} to {later} readings in 6 s\n{stack.Logs}\n{string.Join('\n', browser.ConsoleMessages())}");
        Assert.Equal("yes", browser.Execute<string>("return window.samePage;"));
        Assert.Equal("uPlot", browser.Execute<string>("return typeof uPlot === 'function' ? 'uPlot' : 'missing';"));

        // Above 25 °C for more than 1 s: raised on the dashboard, on MQTT (retained) and on the device list.
        stack.PinnedRawValue = 30_000;
        await browser.WaitForAsync("document.querySelector('#alerts li[data-sensor=fast]') !== null", TimeSpan.FromSeconds(30));
        browser.SaveScreenshot("telemetry-dashboard-alert");
        var retained = await RetainedAlertAsync(stack, "raised");
        Assert.Equal("raised", retained?["state"]?.GetValue<string>());
        Assert.Equal(30.0, retained?["value"]?.GetValue<double>());
        browser.Navigate(new Uri(stack.HttpUri, "/"));
        Assert.NotEmpty(browser.Driver.FindElements(By.CssSelector("[data-alert=fast]")));
        Assert.NotEmpty(browser.Driver.FindElements(By.CssSelector("a.sensors-link[href='/devices/gw1/sensors']")));

        // Back below: cleared everywhere.
        stack.PinnedRawValue = 21_000;
        browser.Navigate(new Uri(stack.HttpUri, "/devices/gw1/sensors"));
        await browser.WaitForAsync("document.querySelector('section.sensor[data-sensor=fast] canvas') !== null && document.querySelector('#alerts li') === null && document.querySelector('section.sensor[data-sensor=fast]').dataset.alert === ''", TimeSpan.FromSeconds(30));
        var cleared = await RetainedAlertAsync(stack, "cleared");
        Assert.Equal("cleared", cleared?["state"]?.GetValue<string>());
        browser.SaveScreenshot("telemetry-dashboard");
    }

    // The retained alert as a fresh subscriber gets it, polled until it says `state` (the relay publishes just after the page can show it).
    private static async Task<JsonNode?> RetainedAlertAsync(TelemetryHistoryStack stack, string state)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        JsonNode? node = null;
        while (DateTime.UtcNow < deadline)
        {
            var result = await Pinhole.Testing.Command.RunAsync("mosquitto_sub", [.. stack.Broker.ClientArguments(), "--retained-only", "-C", "1", "-W", "3", "-t", "pinhole/gw1/alerts/fast"], TimeSpan.FromSeconds(20));
            var line = result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault();
            node = line is null ? null : JsonNode.Parse(line);
            if (node?["state"]?.GetValue<string>() == state) return node;
            await Task.Delay(300);
        }
        return node;
    }
}
