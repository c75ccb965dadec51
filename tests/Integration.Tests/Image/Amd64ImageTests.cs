using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Pinhole.Testing;
using Xunit.Abstractions;
using E2E = Pinhole.Integration.Tests.EndToEnd.EndToEnd;

namespace Pinhole.Integration.Tests.Image;

/// <summary>
/// The amd64 disk image (<c>./build.sh image amd64</c>) booted in a virtual machine, as a user would
/// use it: pinhole/edge.json written on the FAT boot partition, power on, the device comes online at
/// a relay on this host (10.0.2.2 from the guest), its <c>exec:</c> camera (FFmpeg's test source
/// inside the guest) plays through the relay, and its local page answers through a forwarded port.
/// docs/image.md.
/// </summary>
[Collection(E2E.Collection)]
[Trait("Category", "Image")]
public sealed partial class Amd64ImageTests(ITestOutputHelper output)
{
    private const string CameraSource =
        "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc=size=320x240:rate=5 -c:v libx264 -preset ultrafast -tune zerolatency -g 10 -bf 0 -f h264 -";

    // TCG on 2 shared cores: firmware, kernel and .NET's first start are slow; these are ceilings.
    private static readonly TimeSpan BootToOnline = TimeSpan.FromMinutes(12);

    [GeneratedRegex(@"pinhole-firstboot: ERROR ")]
    private static partial Regex FirstBootError();

    [GeneratedRegex(@"pinhole-firstboot: pinhole/edge.json was not applied")]
    private static partial Regex FirstBootNotApplied();

    [GeneratedRegex(@"pinhole-firstboot: data partition: grown from \d+ MiB to \d+ MiB")]
    private static partial Regex DataPartitionGrown();

    [GeneratedRegex(@"pinhole-firstboot: data partition: file system grown from (\d+) MiB to (\d+) MiB")]
    private static partial Regex FileSystemGrown();

    // agetty's banner (/etc/issue) on the serial console: the boot got to the login prompt (the
    // prompt itself ends with no newline, so it is not a line until something else is printed).
    [GeneratedRegex(@"Debian GNU/Linux \d+ \S+ ttyS0|login:")]
    private static partial Regex LoginPrompt();

    [ImageFact]
    public async Task Boots_comes_online_plays_its_camera_serves_its_page_and_comes_back_after_a_reset()
    {
        await using var relay = await ImageRelay.StartAsync(output);
        await using var vm = await ImageVm.CreateAsync(output, "image-boot");
        var edgeJson = JsonSerializer.SerializeToUtf8Bytes(new
        {
            deviceId = E2E.Device,
            token = E2E.Token,
            relays = new[] { $"ws://10.0.2.2:{relay.HttpPort}/uplink" },
            cameras = new[] { new { name = E2E.CameraName, source = CameraSource } },
            web = new { listen = "http://0.0.0.0:8081", password = "edge-page-password" },
            dataDir = "/var/lib/pinhole",
        });
        await vm.WriteBootFileAsync("edge.json", edgeJson);
        // Written to a "card" 3 GiB larger than the image: first boot grows the data partition.
        var (dataStart, imageDataSectors) = await vm.DataPartitionAsync();
        var diskBytes = vm.GrowDisk(3L << 30);

        await vm.PowerOnAsync();
        var clock = Stopwatch.StartNew();
        var first = await relay.WaitOnlineAsync(since: null, BootToOnline);
        var online = clock.Elapsed;
        output.WriteLine($"FIGURE power-on to online at the relay: {online.TotalSeconds:0} s (agent {first.Agent})");
        RecordFigure("power-on to online", online);

        // From inside: first boot grew the mounted data partition and its file system (console).
        var console = File.ReadAllText(vm.ConsoleLog);
        Assert.True(DataPartitionGrown().IsMatch(console), $"no 'data partition: grown' line on the console of the first boot ({vm.ConsoleLog})");
        var fsGrown = Assert.Single(FileSystemGrown().Matches(console));
        output.WriteLine($"FIGURE data file system grown on first boot: {fsGrown.Groups[1].Value} MiB to {fsGrown.Groups[2].Value} MiB");

        var probe = await E2E.ProbeUntilPlayingAsync(relay.RtspUrl, TimeSpan.FromMinutes(3), frames: 20);
        Assert.True(probe.Succeeded && probe.Video is { FramesDecoded: >= 20 }, $"the camera did not play through the relay:\n{probe}");
        Assert.Equal("h264", probe.Video!.CodecName);
        Assert.Equal(320, probe.Video.Width);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var page = await RetryAsync(() => http.GetAsync($"http://127.0.0.1:{vm.PagePort}/"), TimeSpan.FromMinutes(2));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        // The page's URLs are relative (it is also served under the relay's /devices/ID/ui/ prefix).
        Assert.Contains("action=\"login\"", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var healthz = await http.GetAsync($"http://127.0.0.1:{vm.PagePort}/healthz");
        Assert.True(healthz.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"/healthz: {healthz.StatusCode}");

        // First boot moved the config (it holds the token) off the FAT partition. The VM is running,
        // so this is read after the reset below, with the VM off.
        var reset = Stopwatch.StartNew();
        await vm.MonitorAsync("system_reset");
        var second = await relay.WaitOnlineAsync(since: first.ConnectedAt, BootToOnline);
        output.WriteLine($"FIGURE reset to online again: {reset.Elapsed.TotalSeconds:0} s");
        RecordFigure("reset to online again", reset.Elapsed);
        Assert.True(second.ConnectedAt > first.ConnectedAt);
        var again = await E2E.ProbeUntilPlayingAsync(relay.RtspUrl, TimeSpan.FromMinutes(3), frames: 10);
        Assert.True(again.Succeeded && again.Video is { FramesDecoded: >= 10 }, $"the camera did not play after the reset:\n{again}");

        await vm.PowerOffAsync();
        Assert.Null(await vm.ReadBootFileAsync("edge.json"));
        var log = Encoding.UTF8.GetString(await vm.ReadBootFileAsync("first-boot.log") ?? []);
        output.WriteLine("first-boot.log:\n" + log);
        Assert.Contains("hostname: pinhole-gw1", log, StringComparison.Ordinal);
        Assert.DoesNotContain("ERROR", log, StringComparison.Ordinal);

        // The log is the second boot's: nothing left to grow. From outside, with the VM off: the data
        // partition kept its start and ends at the disk's end (less GPT's backup and alignment), and
        // the ext4 in it (fsck'ed by the second boot) fills it.
        Assert.Matches(@"data partition: \d+ MiB, file system \d+ MiB: fills the disk", log);
        var (start, sectors) = await vm.DataPartitionAsync();
        Assert.Equal(dataStart, start);
        Assert.InRange((start + sectors) * 512, diskBytes - (1 << 20), diskBytes);
        var fsBytes = await vm.FileSystemBytesAsync(start);
        Assert.InRange(fsBytes, sectors * 512 - (1 << 20), sectors * 512);
        Assert.Equal(int.Parse(fsGrown.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture), fsBytes >> 20);
        output.WriteLine($"FIGURE data partition {imageDataSectors / 2048} MiB in the image, {sectors / 2048} MiB on a {diskBytes >> 20} MiB disk; file system {fsBytes >> 20} MiB");
        RecordFigure($"data partition grown on first boot from {imageDataSectors / 2048} MiB to {sectors / 2048} MiB (file system {fsBytes >> 20} MiB) on a {diskBytes >> 20} MiB disk");
    }

    [ImageFact]
    public async Task A_broken_edge_json_still_boots_reports_every_problem_in_first_boot_log_and_is_left_untouched()
    {
        await using var vm = await ImageVm.CreateAsync(output, "image-broken");
        // Three problems: relays is not a list, an unknown key, and no token.
        var broken = Encoding.UTF8.GetBytes("{\n  \"deviceId\": \"gw1\",\n  \"relays\": \"ws://10.0.2.2:1/uplink\",\n  \"colour\": \"blue\"\n}\n");
        await vm.WriteBootFileAsync("edge.json", broken);

        await vm.PowerOnAsync();
        await vm.WaitForConsoleAsync(FirstBootError(), BootToOnline);
        await vm.WaitForConsoleAsync(FirstBootNotApplied(), TimeSpan.FromMinutes(2));
        // The boot goes on to the login prompt on the serial console.
        await vm.WaitForConsoleAsync(LoginPrompt(), TimeSpan.FromMinutes(4));
        await vm.PowerOffAsync();

        Assert.Equal(broken, await vm.ReadBootFileAsync("edge.json"));
        var log = Encoding.UTF8.GetString(await vm.ReadBootFileAsync("first-boot.log") ?? []);
        output.WriteLine("first-boot.log:\n" + log);
        var errors = log.Split('\n').Where(l => l.StartsWith("ERROR pinhole/edge.json", StringComparison.Ordinal)).ToList();
        Assert.True(errors.Count >= 2, $"expected one ERROR line per problem in first-boot.log:\n{log}");
        Assert.Contains(errors, e => e.Contains("relays", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("colour", StringComparison.Ordinal));
        Assert.Contains("pinhole-edge will not start until a valid one is given", log, StringComparison.Ordinal);
    }

    private static async Task<HttpResponseMessage> RetryAsync(Func<Task<HttpResponseMessage>> request, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            try { return await request(); }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline) { await Task.Delay(2000); }
            catch (TaskCanceledException) when (DateTime.UtcNow < deadline) { await Task.Delay(2000); }
        }
    }

    /// <summary>test-artifacts/image-figures.txt: the measured times, for docs/image.md.</summary>
    private static void RecordFigure(string what, TimeSpan value) => RecordFigure($"{what}: {value.TotalSeconds:0} s");

    private static void RecordFigure(string figure) =>
        File.AppendAllText(RepoPaths.ArtifactPath("image-figures.txt"), $"{DateTime.UtcNow:yyyy-MM-ddTHH:mm:ssZ} amd64 TCG {figure}\n");
}

/// <summary>A relay on 127.0.0.1 (which the guest reaches as 10.0.2.2) with the test device, a viewer and an API token.</summary>
internal sealed class ImageRelay : IAsyncDisposable
{
    private readonly HttpClient _api;

    private ImageRelay(string dir, int httpPort, int rtspPort, string token, PeerProcess relay)
    {
        Dir = dir;
        HttpPort = httpPort;
        RtspPort = rtspPort;
        Relay = relay;
        _api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{httpPort}"), Timeout = TimeSpan.FromSeconds(30) };
        _api.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public string Dir { get; }
    public int HttpPort { get; }
    public int RtspPort { get; }
    public PeerProcess Relay { get; }
    public Uri RtspUrl => E2E.RtspUrl("127.0.0.1", RtspPort);

    public static async Task<ImageRelay> StartAsync(ITestOutputHelper output)
    {
        var dir = E2E.NewWorkDir("image-relay");
        int httpPort = FreePort.Get(), rtspPort = FreePort.Get();
        var config = E2E.WriteRelayConfig(dir, "127.0.0.1", httpPort, rtspPort);
        var add = await Command.RunAsync("dotnet", [E2E.RelayDll, "tokens", "add", "image-test", "--config", config], TimeSpan.FromSeconds(60));
        Assert.True(add.Succeeded, add.ToString());
        var relay = await PeerProcess.StartAsync(E2E.RelayStartInfo(config, output));
        return new ImageRelay(dir, httpPort, rtspPort, add.StandardOutput.Trim(), relay);
    }

    public sealed record DeviceState(bool Online, DateTimeOffset? ConnectedAt, string? Agent);

    /// <summary>Polls GET /api/devices/ID until the device is online with a connection newer than <paramref name="since"/>.</summary>
    public async Task<DeviceState> WaitOnlineAsync(DateTimeOffset? since, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        DeviceState? last = null;
        while (DateTime.UtcNow < deadline)
        {
            var response = await _api.GetAsync($"/api/devices/{E2E.Device}");
            if (response.IsSuccessStatusCode)
            {
                var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                last = new DeviceState(
                    json["online"]?.GetValue<bool>() ?? false,
                    json["connectedAt"] is { } c ? DateTimeOffset.Parse(c.ToString(), System.Globalization.CultureInfo.InvariantCulture) : null,
                    json["agent"]?.ToString());
                if (last.Online && last.ConnectedAt is { } at && (since is null || at > since))
                    return last;
            }
            await Task.Delay(1000);
        }
        throw new TimeoutException($"device {E2E.Device} not online at the relay within {timeout.TotalMinutes:0} min (last state: {last})\n{Relay.Describe("relay")}");
    }

    public async ValueTask DisposeAsync()
    {
        _api.Dispose();
        await Relay.DisposeAsync();
    }
}
