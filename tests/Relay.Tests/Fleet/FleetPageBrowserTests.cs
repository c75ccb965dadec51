using OpenQA.Selenium;
using Pinhole.Relay.Configuration;
using Pinhole.Testing;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>The fleet pages in headless Chromium against an in-process relay: an admin edits a device's configuration.</summary>
public sealed class FleetPageBrowserTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("pinhole-fleet-page-").FullName;
    private RelayApp _relay = null!;

    public async Task InitializeAsync() => _relay = await RelayApp.StartAsync(new RelayConfig
    {
        Http = "http://127.0.0.1:0",
        Rtsp = "127.0.0.1:0",
        DataDir = _dir,
        Devices = [new DeviceConfig { Id = "gw1", Token = "a-long-random-secret" }],
        Viewers = [new ViewerConfig { User = "alice", Password = "alice-pass", Role = ViewerRoles.Admin }, new ViewerConfig { User = "bob", Password = "bob-pass" }],
    });

    public async Task DisposeAsync()
    {
        await _relay.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private static void LogIn(Chromium browser, string user, string password)
    {
        browser.Driver.FindElement(By.Name("user")).SendKeys(user);
        browser.Driver.FindElement(By.Name("password")).SendKeys(password);
        browser.Driver.FindElement(By.CssSelector("button[type=submit]")).Click();
    }

    [RequiresFact(Needs.Chromium)]
    public async Task An_admin_sees_the_problems_inline_then_saves_a_revision_that_shows_in_history_and_audit()
    {
        using var browser = Chromium.Start(new ChromiumOptions { Height = 1400 });
        browser.Navigate(new Uri(_relay.HttpUri, "/fleet"));
        Assert.Contains("/login?next=", browser.Driver.Url, StringComparison.Ordinal);
        LogIn(browser, "alice", "alice-pass");
        await browser.WaitForAsync("document.querySelector('#devices tr[data-device=\"gw1\"]') !== null", TimeSpan.FromSeconds(10));
        Assert.Equal("offline", browser.Execute<string>("return document.querySelector('#devices tr[data-device=\"gw1\"] td.state').textContent"));

        browser.Driver.FindElement(By.LinkText("gw1")).Click();
        await browser.WaitForAsync("document.getElementById('config') && document.getElementById('config').value.includes('cameras')", TimeSpan.FromSeconds(10));
        var editor = browser.Driver.FindElement(By.Id("config"));
        editor.Clear();
        editor.SendKeys("""{ "cameras": [ { "name": "door", "source": "http://cam/1" } ], "token": "x" }""");
        browser.Driver.FindElement(By.Id("save")).Click();
        var problems = (string)(await browser.WaitForAsync(
            "document.querySelectorAll('#problems li').length === 2 && [...document.querySelectorAll('#problems li')].map(l => l.textContent).join('|')",
            TimeSpan.FromSeconds(10)))!;
        Assert.Equal("token: cannot be managed from the relay (only cameras, sensors, mqtt, relays); it stays as set on the device|cameras[0].source: unsupported scheme \"http\" (use rtsp:// or exec:)", problems);

        editor.Clear();
        editor.SendKeys("""{ "cameras": [ { "name": "door", "source": "rtsp://cam/1" } ] }""");
        browser.Driver.FindElement(By.Id("save")).Click();
        await browser.WaitForAsync("document.getElementById('save-result').textContent === 'stored as revision 1'", TimeSpan.FromSeconds(10));
        Assert.Equal(0, browser.Execute<long>("return document.querySelectorAll('#problems li').length"));
        await browser.WaitForAsync("document.querySelectorAll('#history tbody tr').length === 1", TimeSpan.FromSeconds(10));
        Assert.Equal("1|user:alice|pending", browser.Execute<string>(
            "const c = document.querySelectorAll('#history tbody tr td'); return [c[0].textContent, c[1].textContent, c[3].textContent].join('|')"));
        await browser.WaitForAsync("[...document.querySelectorAll('#audit tbody tr')].some(r => r.textContent.includes('config.set'))", TimeSpan.FromSeconds(10));
        Assert.Contains("127.0.0.1", browser.Execute<string>("return document.querySelector('#audit tbody tr').textContent"), StringComparison.Ordinal);

        var stored = _relay.Services.GetRequiredService<Pinhole.Relay.Fleet.IFleetStore>().GetLatestConfig("gw1");
        Assert.Equal("""{"cameras":[{"name":"door","source":"rtsp://cam/1"}]}""", stored!.Document);
        Assert.DoesNotContain(browser.ConsoleMessages(), m => m.Contains("Content Security Policy", StringComparison.Ordinal));
    }

    [RequiresFact(Needs.Chromium)]
    public async Task A_viewer_is_refused_the_fleet_page()
    {
        using var browser = Chromium.Start();
        browser.Navigate(new Uri(_relay.HttpUri, "/fleet"));
        LogIn(browser, "bob", "bob-pass");
        await browser.WaitForAsync("document.querySelector('h1') && document.querySelector('h1').textContent === 'Not allowed'", TimeSpan.FromSeconds(10));
        Assert.Empty(browser.Driver.FindElements(By.Id("devices")));
    }
}
