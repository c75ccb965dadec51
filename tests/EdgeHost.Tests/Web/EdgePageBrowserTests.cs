using OpenQA.Selenium;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Tests.Support;
using Pinhole.EdgeHost.Web;
using Pinhole.Transport.Security;
using Pinhole.Testing;

namespace Pinhole.EdgeHost.Tests.Web;

/// <summary>The local page in headless Chromium, against the real host with fake pipelines behind the factory seam.</summary>
public class EdgePageBrowserTests
{
    private static readonly string[] AllPipelines = ["uplink", "camera/door", "camera/pi", "sensor/cpu_temp", "sensor/door_contact", "mqtt"];

    [RequiresFact(Needs.Chromium)]
    public async Task Log_in_edit_a_sensor_and_a_camera_save_and_only_those_pipelines_restart_an_invalid_url_changes_nothing_and_wrong_passwords_are_throttled()
    {
        var throttle = new LoginThrottleOptions { FreeFailures = 2, FreeFailuresPerAccount = 9, FirstLockout = TimeSpan.FromSeconds(2) };
        await using var host = await EdgeTestHost.StartAsync(throttle: throttle);
        using var browser = Chromium.Start(new ChromiumOptions { Height = 1400 });
        var driver = browser.Driver;
        try
        {
            // Wrong passwords: three are answered "wrong", then even the right one is refused until the lockout ends.
            browser.Navigate(host.BaseAddress);
            for (var i = 1; i <= 3; i++)
            {
                SubmitPassword(driver, $"wrong-{i}");
                Assert.StartsWith("Wrong password.", driver.FindElement(By.Id("message")).Text, StringComparison.Ordinal);
            }
            Assert.Contains("try again in 2 s", driver.FindElement(By.Id("message")).Text, StringComparison.Ordinal);
            SubmitPassword(driver, TempConfigDir.Password);
            Assert.StartsWith("Too many wrong passwords. Try again in", driver.FindElement(By.Id("message")).Text, StringComparison.Ordinal);
            Assert.Empty(driver.FindElements(By.Id("pipelines")));

            await Task.Delay(2200);
            SubmitPassword(driver, TempConfigDir.Password);
            await browser.WaitForAsync("document.querySelectorAll('#pipelines tbody tr.healthy').length === 6", TimeSpan.FromSeconds(15));
            var cookie = driver.Manage().Cookies.GetCookieNamed(PageSignIn.CookieName);
            Assert.NotNull(cookie);
            Assert.True(cookie.IsHttpOnly);
            Assert.Equal("Strict", cookie.SameSite);
            Assert.All(AllPipelines, n => Assert.Equal(1, host.Starts.Count(n)));
            Assert.Equal("every 5s", StatusOf(browser, "sensor/cpu_temp"));
            Assert.Equal("connected to wss://relay.example.com/uplink", driver.FindElement(By.CssSelector("#uplink-panel .detail")).Text);
            Assert.Equal("connected to wss://broker.example.com:8884/mqtt", driver.FindElement(By.CssSelector("#mqtt-panel .detail")).Text);
            // The tables are re-rendered every second: read them in one script, not element by element.
            Assert.Equal("line 17", browser.Execute<string>("return document.querySelector('#sensors-panel tr[data-sensor=\"door_contact\"] td.value').textContent"));

            // Edit the first sensor's interval and the first camera's URL, save.
            await browser.WaitForAsync("document.getElementsByName('sensors[0].interval').length === 1", TimeSpan.FromSeconds(10));
            Retype(driver, "sensors[0].interval", "10s");
            Retype(driver, "cameras[0].source", "rtsp://user:pass@192.168.1.65:554/stream2");
            // The camera's transport select offers auto (shown by default), tcp and udp.
            Assert.Equal("auto,tcp,udp|auto", browser.Execute<string>(
                "const t = document.getElementsByName('cameras[0].transport')[0]; return [...t.options].map(o => o.value).join(',') + '|' + t.value"));
            browser.Execute("const t = document.getElementsByName('cameras[0].transport')[0]; t.value = 'udp'; t.dispatchEvent(new Event('change'))");
            driver.FindElement(By.Id("save")).Click();
            var saved = (string)(await browser.WaitForAsync(
                "document.querySelector('#save-result.ok') && document.querySelector('#save-result').textContent", TimeSpan.FromSeconds(15)))!;
            Assert.Equal("Saved and applied: restarted camera/door, sensor/cpu_temp.", saved);

            // The new values are live: the status view shows what the restarted pipelines run with.
            await browser.WaitForAsync(
                "[...document.querySelectorAll('#pipelines tr[data-pipeline=\"camera/door\"] td.status')].some(td => td.textContent === 'playing rtsp://user:pass@192.168.1.65:554/stream2')",
                TimeSpan.FromSeconds(10));
            await browser.WaitForAsync(
                "[...document.querySelectorAll('#pipelines tr[data-pipeline=\"sensor/cpu_temp\"] td.status')].some(td => td.textContent === 'every 10s')",
                TimeSpan.FromSeconds(10));
            Assert.Equal(2, host.Starts.Count("camera/door"));
            Assert.Equal(2, host.Starts.Count("sensor/cpu_temp"));
            Assert.All(AllPipelines.Except(["camera/door", "sensor/cpu_temp"]), n => Assert.Equal(1, host.Starts.Count(n)));
            var onDisk = EdgeConfigLoader.LoadFile(host.ConfigPath).Config!;
            Assert.Equal("10s", onDisk.Sensors[0].Interval);
            Assert.Equal("rtsp://user:pass@192.168.1.65:554/stream2", onDisk.Cameras[0].Source);
            Assert.Equal("udp", onDisk.Cameras[0].Transport);
            Assert.DoesNotContain("\"transport\"", (await File.ReadAllTextAsync(host.ConfigPath)).Split("\"pi\"")[1], StringComparison.Ordinal); // auto stays unwritten
            Assert.True(File.Exists(host.ConfigPath + ".prev"));

            // An invalid URL: the message appears next to the field, nothing is saved, nothing restarts.
            var fileBefore = await File.ReadAllTextAsync(host.ConfigPath);
            await browser.WaitForAsync("document.getElementsByName('cameras[1].source').length === 1", TimeSpan.FromSeconds(10));
            Retype(driver, "cameras[1].source", "http://192.168.1.70/video");
            driver.FindElement(By.Id("save")).Click();
            var fieldError = (string)(await browser.WaitForAsync(
                "document.querySelector('.err[data-for=\"cameras[1].source\"]').textContent", TimeSpan.FromSeconds(10)))!;
            Assert.Equal("unsupported scheme \"http\" (use rtsp:// or exec:)", fieldError);
            Assert.StartsWith("Not saved: 1 problem.", driver.FindElement(By.Id("save-result")).Text, StringComparison.Ordinal);
            Assert.Contains("invalid", driver.FindElement(By.Name("cameras[1].source")).GetAttribute("class") ?? "", StringComparison.Ordinal);
            Assert.Equal(fileBefore, await File.ReadAllTextAsync(host.ConfigPath));
            await Task.Delay(500);
            Assert.Equal(2, host.Starts.Count("camera/door"));
            Assert.Equal(1, host.Starts.Count("camera/pi"));
            Assert.Equal("exec:rpicam-vid -t 0 --inline --codec h264 -o -", EdgeConfigLoader.LoadFile(host.ConfigPath).Config!.Cameras[1].Source);
            browser.SaveScreenshot("edge-page-refused-save");
        }
        catch
        {
            browser.SaveScreenshot("edge-page-failure");
            throw;
        }
    }

    private static void SubmitPassword(IWebDriver driver, string password)
    {
        var input = driver.FindElement(By.Name("password"));
        input.Clear();
        input.SendKeys(password);
        var before = driver.FindElement(By.TagName("html"));
        driver.FindElement(By.Id("login")).Click();
        // The form post navigates; wait until the old document is gone before reading the new one.
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            try
            {
                _ = before.TagName;
            }
            catch (StaleElementReferenceException)
            {
                break;
            }
            catch (WebDriverException e) when (e.Message.Contains("does not belong to the document", StringComparison.Ordinal))
            {
                // Chromium's other way of saying stale, seen when the new document replaces the old
                // one between the lookup and the read (under load).
                break;
            }
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the login form post did not load a new page");
            Thread.Sleep(50);
        }
    }

    private static void Retype(IWebDriver driver, string name, string value)
    {
        var input = driver.FindElement(By.Name(name));
        input.Clear();
        input.SendKeys(value);
    }

    private static string StatusOf(Chromium browser, string pipeline) =>
        browser.Execute<string>($"return document.querySelector('#pipelines tr[data-pipeline=\"{pipeline}\"] td.status').textContent");
}
