using System.CommandLine;
using Pinhole.Relay;
using Pinhole.Relay.Configuration;
using Pinhole.Relay.Devices;

// pinhole-relay: the WAN end of the uplink. Every failure the user can cause (bad config, busy
// port, unknown device) ends in one clear line on stderr and a non-zero exit, never a stack trace.

var configOption = new Option<FileInfo>("--config", "-c") { Description = "relay.json to run with" };

var root = new RootCommand("pinhole-relay: re-serves cameras that dial out from behind NAT (RTSP, browsers, fleet API).");
root.Options.Add(configOption);
root.SetAction(async (parse, ct) =>
{
    var file = parse.GetValue(configOption);
    if (file is null) return Fail("--config FILE is required (see --help)", 2);
    var config = RelayConfigLoader.LoadFile(file.FullName, out var problems);
    if (config is null) return Problems(file.FullName, problems);
    RelayApp relay;
    try
    {
        relay = await RelayApp.StartAsync(config, cancellationToken: ct);
    }
    catch (IOException e)
    {
        return Fail($"cannot listen on {config.Http}: {e.Message}", 1);
    }
    catch (Exception e) when (e is InvalidOperationException or System.Security.Cryptography.CryptographicException or Microsoft.Data.Sqlite.SqliteException or UnauthorizedAccessException)
    {
        return Fail(e.Message, 1);
    }
    await using (relay)
    {
        Console.Error.WriteLine($"pinhole-relay: serving {relay.HttpUri} (uplink {relay.UplinkUri})");
        foreach (var note in RelayConfigLoader.Notes(config)) Console.Error.WriteLine($"pinhole-relay: {note}");
        await relay.WaitForShutdownAsync(ct);
    }
    return 0;
});

var checkFile = new Argument<FileInfo>("FILE") { Description = "relay.json to validate" };
var check = new Command("check-config", "Validate a relay.json and print every problem, one per line.") { checkFile };
check.SetAction(parse =>
{
    var file = parse.GetValue(checkFile)!;
    var config = RelayConfigLoader.LoadFile(file.FullName, out var problems);
    if (config is null) return Problems(file.FullName, problems);
    Console.WriteLine($"{file.FullName}: ok ({config.Devices.Count} devices, {config.Viewers.Count} viewers)");
    foreach (var note in RelayConfigLoader.Notes(config)) Console.WriteLine($"{file.FullName}: note: {note}");
    return 0;
});
root.Subcommands.Add(check);

var devices = new Command("devices", "Manage devices stored in dataDir.");
var deviceId = new Argument<string>("ID") { Description = "device id (letters, digits, '-', '_')" };
var add = new Command("add", "Create a device and print its new token (shown once).") { deviceId, configOption };
add.SetAction(parse => WithRegistry(parse.GetValue(configOption), registry =>
{
    Console.WriteLine(registry.Add(parse.GetValue(deviceId)!));
    return 0;
}));
var remove = new Command("remove", "Delete a device added with 'devices add'.") { deviceId, configOption };
remove.SetAction(parse => WithRegistry(parse.GetValue(configOption), registry =>
    registry.Remove(parse.GetValue(deviceId)!) ? 0 : Fail($"no stored device \"{parse.GetValue(deviceId)}\"", 1)));
var list = new Command("list", "List device ids (from relay.json and from dataDir).") { configOption };
list.SetAction(parse => WithRegistry(parse.GetValue(configOption), registry =>
{
    foreach (var id in registry.List()) Console.WriteLine(id);
    return 0;
}));
devices.Subcommands.Add(add);
devices.Subcommands.Add(remove);
devices.Subcommands.Add(list);
root.Subcommands.Add(devices);

return await root.Parse(args).InvokeAsync();

static int WithRegistry(FileInfo? file, Func<DeviceRegistry, int> action)
{
    if (file is null) return Fail("--config FILE is required", 2);
    var config = RelayConfigLoader.LoadFile(file.FullName, out var problems);
    if (config is null) return Problems(file.FullName, problems);
    try
    {
        return action(new DeviceRegistry(config.DataDir, config.Devices));
    }
    catch (Exception e) when (e is InvalidOperationException or Microsoft.Data.Sqlite.SqliteException or IOException or UnauthorizedAccessException)
    {
        return Fail(e.Message, 1);
    }
}

static int Problems(string file, IReadOnlyList<string> problems)
{
    foreach (var p in problems) Console.Error.WriteLine($"{file}: {p}");
    return 1;
}

static int Fail(string message, int code)
{
    Console.Error.WriteLine($"pinhole-relay: {message}");
    return code;
}
