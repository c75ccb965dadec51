using OpenQA.Selenium;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Updates;
using Pinhole.Testing;
using Pinhole.Transport.Updates;
using Pinhole.Transport.Uplink;

namespace Pinhole.Relay.Tests.Fleet;

/// <summary>The fleet pages in headless Chromium against an in-process relay: an admin edits a device's configuration and rolls out a release.</summary>
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
        // The link rate gw1 last reported (what the relay stores from its status documents): 250 000 B/s.
        _relay.Services.GetRequiredService<Pinhole.Relay.Fleet.IFleetStore>().SetLinkRate("gw1", 250_000, DateTimeOffset.UtcNow);
        using var browser = Chromium.Start(new ChromiumOptions { Height = 1400 });
        browser.Navigate(new Uri(_relay.HttpUri, "/fleet"));
        Assert.Contains("/login?next=", browser.Driver.Url, StringComparison.Ordinal);
        LogIn(browser, "alice", "alice-pass");
        await browser.WaitForAsync("document.querySelector('#devices tr[data-device=\"gw1\"]') !== null", TimeSpan.FromSeconds(10));
        Assert.Equal("offline", browser.Execute<string>("return document.querySelector('#devices tr[data-device=\"gw1\"] td.state').textContent"));
        Assert.Equal("2.0 Mbit/s", browser.Execute<string>("return document.querySelector('#devices tr[data-device=\"gw1\"] td.link').textContent"));

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

    /// <summary>A tiny signed release (a script for <c>pinhole-edge</c>) stored on the relay the way <c>releases add</c> does.</summary>
    private StoredRelease AddRelease(string version)
    {
        var folder = Directory.CreateDirectory(Path.Combine(_dir, "build-" + version)).FullName;
        File.WriteAllText(Path.Combine(folder, "pinhole-edge"), "#!/bin/sh\nexec sleep 3600\n");
        var (key, _) = ReleasePacker.CreateKeyPair();
        var bundle = Path.Combine(_dir, version + ".bundle");
        ReleasePacker.Pack(folder, version, key, bundle, "any");
        return _relay.Services.GetRequiredService<UpdateService>().Releases.Add(bundle).Release;
    }

    private static string Text(Chromium browser, string selector) =>
        browser.Execute<string>($"const e = document.querySelector('{selector}'); return e ? e.textContent : ''");

    [RequiresFact(Needs.Chromium)]
    public async Task An_admin_starts_a_rollout_from_the_page_and_follows_the_device_from_offered_to_rolled_back_and_the_halt()
    {
        var wait = TimeSpan.FromSeconds(15);
        var release = AddRelease("1.1.0");
        await using var device = await FakeDevice.ConnectAsync(_relay.UplinkUri, "gw1", "a-long-random-secret", "pinhole-edge/1.0.0");
        await device.SendAsync(new UpdateReport("1.0.0", UpdateState.Running, 0, ""));

        using var browser = Chromium.Start(new ChromiumOptions { Height = 1600 });
        browser.Navigate(new Uri(_relay.HttpUri, "/fleet"));
        LogIn(browser, "alice", "alice-pass");
        await browser.WaitForAsync("document.querySelector('#releases tr[data-version=\"1.1.0\"]') !== null", wait);
        Assert.Equal("1.1.0|any", browser.Execute<string>(
            "const c = document.querySelectorAll('#releases tr[data-version=\"1.1.0\"] td'); return c[0].textContent + '|' + c[1].textContent"));
        Assert.Equal("1.1.0", browser.Execute<string>("return document.querySelector('#start-rollout select[name=version]').value"));
        await browser.WaitForAsync("document.querySelector('#devices tr[data-device=\"gw1\"] td.update') && document.querySelector('#devices tr[data-device=\"gw1\"] td.update').textContent === '1.0.0'", wait);

        // The API's refusal shows next to the form, and nothing is started.
        var devices = browser.Driver.FindElement(By.CssSelector("#start-rollout input[name=devices]"));
        devices.SendKeys("gw1,nope");
        browser.Driver.FindElement(By.CssSelector("#start-rollout button[type=submit]")).Click();
        await browser.WaitForAsync("document.getElementById('rollout-result').textContent.startsWith('not started')", wait);
        Assert.Equal("not started: unknown device: nope", Text(browser, "#rollout-result"));
        var updates = _relay.Services.GetRequiredService<UpdateService>();
        Assert.Empty(updates.Store.List());

        devices.Clear();
        devices.SendKeys("gw1");
        browser.Driver.FindElement(By.CssSelector("#start-rollout button[type=submit]")).Click();
        await browser.WaitForAsync("document.getElementById('rollout-result').textContent.startsWith('rollout ')", wait);
        Assert.Equal("rollout 1 started: 1.1.0 to gw1", Text(browser, "#rollout-result"));
        var rollout = Assert.Single(updates.Store.List());
        Assert.Equal(("1.1.0", "user:alice", "active", 100), (rollout.Version, rollout.Author, rollout.State, rollout.Percent));
        Assert.Equal(["gw1"], rollout.Devices!);

        // The relay offers the stored bundle to the device, and the page shows each state it reports.
        var offer = await device.NextAsync<UpdateOffer>(wait);
        Assert.Equal(("1.1.0", (ulong)release.Size), (offer.Version, offer.Size));
        Assert.Equal(release.Sha256, offer.Sha256.ToArray());
        const string gw1State = "#rollouts div.rollout[data-rollout=\"1\"] tr[data-device=\"gw1\"] td.update";
        await browser.WaitForAsync($"document.querySelector('{gw1State}') && document.querySelector('{gw1State}').textContent === 'offered'", wait);

        await device.SendAsync(new UpdateReport("1.1.0", UpdateState.Downloading, 40, ""));
        await browser.WaitForAsync($"document.querySelector('{gw1State}').textContent === 'downloading 40 %'", wait);
        await browser.WaitForAsync("document.querySelector('#devices tr[data-device=\"gw1\"] td.update').textContent === '1.0.0 → 1.1.0 downloading 40 %'", wait);

        await device.SendAsync(new UpdateReport("1.1.0", UpdateState.Trial, 0, ""));
        await browser.WaitForAsync($"document.querySelector('{gw1State}').textContent === 'trial'", wait);

        const string why = "trial: the uplink did not connect within 3 min";
        await device.SendAsync(new UpdateReport("1.1.0", UpdateState.RolledBack, 0, why));
        await device.SendAsync(new UpdateReport("1.0.0", UpdateState.Running, 0, ""));
        await browser.WaitForAsync($"document.querySelector('{gw1State}').textContent === 'rolled back: {why}'", wait);
        // One of one offered devices failed, above the 20 % default: the relay halts the rollout by itself.
        await browser.WaitForAsync("document.querySelector('#rollouts div.rollout[data-rollout=\"1\"] p.rollout-state').textContent.startsWith('halted: ')", wait);
        Assert.Equal("halted", updates.Store.List().Single().State);
        var stored = updates.Store.Get("gw1")!;
        Assert.Equal(("1.0.0", "1.1.0", "rolled-back", why), (stored.Running, stored.Version, stored.State, stored.Detail));

        await browser.WaitForAsync("[...document.querySelectorAll('#audit tbody tr')].some(r => r.textContent.includes('rollout.start') && r.textContent.includes('user:alice'))", wait);
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
