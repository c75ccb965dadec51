using System.CommandLine;
using Pinhole.Relay;
using Pinhole.Relay.Configuration;
using Pinhole.EdgeHost.Configuration;
using Pinhole.Relay.Devices;
using Pinhole.Relay.Fleet;

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
    catch (Exception e) when (e is InvalidOperationException or System.Security.Cryptography.CryptographicException or System.Data.Common.DbException or UnauthorizedAccessException)
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

var devices = new Command("devices", "Manage the devices allowed to open an uplink (stored in dataDir; changes are audited).");
var deviceId = new Argument<string>("ID") { Description = "device id (letters, digits, '-', '_')" };
var add = new Command("add", "Create a device and print its new token (shown once).") { deviceId, configOption };
add.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, origin) =>
{
    var id = parse.GetValue(deviceId)!;
    Console.WriteLine(registry.Add(id));
    store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "device.add", id, "device added with a new token"));
    return 0;
}));
var remove = new Command("remove", "Delete a device added with 'devices add' (a running relay closes its uplink within a second).") { deviceId, configOption };
remove.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, origin) =>
{
    var id = parse.GetValue(deviceId)!;
    if (!registry.Remove(id))
        return Fail(registry.Exists(id) ? $"device \"{id}\" is listed in relay.json; remove it there" : $"no stored device \"{id}\"", 1);
    store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "device.remove", id, "device removed"));
    return 0;
}));
var rotate = new Command("rotate-token", "Give a device a new token and print it; the old one stops working and a live uplink that used it is closed.") { deviceId, configOption };
rotate.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, origin) =>
{
    var id = parse.GetValue(deviceId)!;
    Console.WriteLine(registry.RotateToken(id));
    store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "device.rotate-token", id, "token rotated; the old token no longer works"));
    return 0;
}));
var revoke = new Command("revoke", "Revoke a device's token: its live uplink is closed and it cannot reconnect until rotate-token.") { deviceId, configOption };
revoke.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, origin) =>
{
    var id = parse.GetValue(deviceId)!;
    registry.Revoke(id);
    store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "device.revoke", id, "token revoked"));
    return 0;
}));
var longOption = new Option<bool>("--long", "-l") { Description = "one line per device with its source, state and configuration revisions" };
var list = new Command("list", "List device ids (from relay.json and from dataDir).") { configOption, longOption };
list.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, _) =>
{
    // Several relays on one database (docs/scale-out.md): the relay holding each online device's uplink, from its lease.
    var owners = store is IDeviceOwnership shared
        ? shared.ListOwners(DateTimeOffset.UtcNow).ToDictionary(o => o.Device, StringComparer.Ordinal) : null;
    foreach (var d in registry.Describe())
    {
        var record = store.GetDeviceRecord(d.Id);
        // The running version (from the device's agent string) once the device has connected.
        var version = FleetApi.AgentVersion(record?.Agent);
        // The uplink rate the device last measured (docs/fleet.md), in kbit/s.
        var link = record?.LinkBytesPerSecond is { } rate ? $"link={FleetApi.Kbits(rate)}kbit/s" : null;
        if (!parse.GetValue(longOption))
        {
            Console.WriteLine(version is null && link is null ? d.Id : link is null ? $"{d.Id}\t{version}" : $"{d.Id}\t{version ?? "-"}\t{link}");
            continue;
        }
        var desired = store.GetLatestConfig(d.Id);
        Console.WriteLine(string.Join('\t', d.Id, d.Source, d.Revoked is null ? "active" : "revoked",
            record?.LastSeen?.ToString("u", System.Globalization.CultureInfo.InvariantCulture) ?? "never-seen", record?.Agent ?? "-",
            desired is null ? "desired=-" : $"desired={desired.Revision}",
            record?.ReportedRevision is { } r ? $"reported={r}:{record.ReportedOutcome}" : "reported=-",
            $"version={version ?? "-"}", link ?? "link=-") +
            (owners is null ? "" : "\t" + (owners.TryGetValue(d.Id, out var owner) ? $"online={owner.PublicUrl ?? owner.RelayId}" : "offline")));
    }
    return 0;
}));
devices.Subcommands.Add(add);
devices.Subcommands.Add(remove);
devices.Subcommands.Add(list);
devices.Subcommands.Add(rotate);
devices.Subcommands.Add(revoke);
root.Subcommands.Add(devices);

var tokens = new Command("tokens", "API tokens for scripts: Authorization: Bearer TOKEN on /api/* (admin rights).");
var tokenName = new Argument<string>("NAME") { Description = "a name for the token (letters, digits, '.', '-', '_')" };
var tokenAdd = new Command("add", "Create an API token and print it (shown once; only its hash is stored).") { tokenName, configOption };
tokenAdd.SetAction(parse => WithFleet(parse.GetValue(configOption), (_, store, origin) =>
{
    var name = parse.GetValue(tokenName)!;
    Console.WriteLine(ApiTokens.Create(store, name, DateTimeOffset.UtcNow));
    store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "token.add", "token:" + name, "API token created"));
    return 0;
}));
var tokenRemove = new Command("remove", "Delete an API token.") { tokenName, configOption };
tokenRemove.SetAction(parse => WithFleet(parse.GetValue(configOption), (_, store, origin) =>
{
    var name = parse.GetValue(tokenName)!;
    if (!store.RemoveApiToken(name)) return Fail($"no API token \"{name}\"", 1);
    store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "token.remove", "token:" + name, "API token deleted"));
    return 0;
}));
var tokenList = new Command("list", "List API token names.") { configOption };
tokenList.SetAction(parse => WithFleet(parse.GetValue(configOption), (_, store, _) =>
{
    foreach (var (name, created) in store.ListApiTokens())
        Console.WriteLine($"{name}\t{created:u}");
    return 0;
}));
tokens.Subcommands.Add(tokenAdd);
tokens.Subcommands.Add(tokenRemove);
tokens.Subcommands.Add(tokenList);
root.Subcommands.Add(tokens);

var configCommand = new Command("config", "A device's desired configuration (the managed part of edge.json), pushed over its uplink.");
var configFile = new Argument<FileInfo>("FILE") { Description = "JSON document: cameras, sensors, mqtt and optionally relays" };
var configGet = new Command("get", "Write the device's latest desired configuration to FILE ('-' for stdout).") { deviceId, configFile, configOption };
configGet.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, _) =>
{
    var id = parse.GetValue(deviceId)!;
    if (!registry.Exists(id)) return Fail($"no device \"{id}\"", 1);
    if (store.GetLatestConfig(id) is not { } latest) return Fail($"no desired configuration stored for \"{id}\"", 1);
    var pretty = System.Text.Json.Nodes.JsonNode.Parse(latest.Document)!.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }) + "\n";
    var target = parse.GetValue(configFile)!;
    if (target.Name == "-") Console.Write(pretty);
    else File.WriteAllText(target.FullName, pretty);
    Console.Error.WriteLine($"{id}: revision {latest.Revision}, {latest.Outcome ?? "not reported yet"}{(string.IsNullOrEmpty(latest.Detail) ? "" : ": " + latest.Detail)}");
    return 0;
}));
var configSet = new Command("set", "Validate FILE like 'pinhole-edge check-config' and store it as the device's next revision; a running relay sends it within a second.") { deviceId, configFile, configOption };
configSet.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, origin) =>
{
    var id = parse.GetValue(deviceId)!;
    if (!registry.Exists(id)) return Fail($"no device \"{id}\"", 1);
    var source = parse.GetValue(configFile)!;
    var text = source.Name == "-" ? Console.In.ReadToEnd() : File.ReadAllText(source.FullName);
    var problems = ManagedConfig.Validate(text, out var document);
    if (problems.Count > 0)
    {
        foreach (var p in problems) Console.Error.WriteLine($"{source.Name}: {p}");
        return 1;
    }
    var normalized = document!.ToJsonString();
    var revision = store.AddConfigRevision(id, normalized, origin.Actor, DateTimeOffset.UtcNow);
    store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "config.set", id, $"revision {revision} ({normalized.Length} bytes)"));
    Console.WriteLine($"{id}: revision {revision}");
    return 0;
}));
configCommand.Subcommands.Add(configGet);
configCommand.Subcommands.Add(configSet);
root.Subcommands.Add(configCommand);

// ---------------------------------------------------------------- releases and rollouts (docs/updates.md)
var releases = new Command("releases", "Signed release bundles of pinhole-edge: make a key, pack a build, store it on the relay.");
var outDir = new Option<DirectoryInfo>("--out") { Description = "folder for release.key (private, keep it off the relay) and release.pub (goes to devices)", Required = true };
var keygen = new Command("keygen", "Create an ECDSA P-256 signing key pair: DIR/release.key and DIR/release.pub (PEM).") { outDir };
keygen.SetAction(parse =>
{
    var dir = parse.GetValue(outDir)!.FullName;
    var priv = Path.Combine(dir, "release.key");
    if (File.Exists(priv)) return Fail($"{priv} exists; refusing to overwrite a signing key", 1);
    try
    {
        Directory.CreateDirectory(dir);
        var (privatePem, publicPem) = Pinhole.Transport.Updates.ReleasePacker.CreateKeyPair();
        using (var f = new FileStream(priv, FileMode.CreateNew, FileAccess.Write))
        {
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(f.SafeFileHandle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            f.Write(System.Text.Encoding.ASCII.GetBytes(privatePem + "\n"));
        }
        File.WriteAllText(Path.Combine(dir, "release.pub"), publicPem + "\n");
        Console.WriteLine($"{priv} (private: signs releases; keep it safe)");
        Console.WriteLine($"{Path.Combine(dir, "release.pub")} (public: edge.json update.publicKey)");
        return 0;
    }
    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
    {
        return Fail(e.Message, 1);
    }
});
var packDir = new Argument<DirectoryInfo>("DIR") { Description = "an edge build folder (published pinhole-edge)" };
var versionOption = new Option<string>("--version") { Description = "release version, e.g. 1.4.0", Required = true };
var keyOption = new Option<FileInfo>("--key") { Description = "private key PEM (releases keygen)", Required = true };
var outFile = new Option<FileInfo>("--out") { Description = "bundle file to write", Required = true };
var archOption = new Option<string?>("--arch") { Description = "linux-arm64, linux-x64 or any (default: from pinhole-edge's ELF header, else any)" };
var pack = new Command("pack", "Pack an edge build folder into one signed bundle (manifest with version, architecture, file hashes, signature).") { packDir, versionOption, keyOption, outFile, archOption };
pack.SetAction(parse =>
{
    try
    {
        var manifest = Pinhole.Transport.Updates.ReleasePacker.Pack(parse.GetValue(packDir)!.FullName, parse.GetValue(versionOption)!,
            File.ReadAllText(parse.GetValue(keyOption)!.FullName), parse.GetValue(outFile)!.FullName, parse.GetValue(archOption));
        Console.WriteLine($"{parse.GetValue(outFile)!.FullName}: {manifest.Version} for {manifest.Architecture}, {manifest.Files.Count} files, {manifest.TotalBytes} bytes");
        return 0;
    }
    catch (Exception e) when (e is Pinhole.Transport.Updates.ReleaseBundleException or IOException or UnauthorizedAccessException)
    {
        return Fail(e.Message, 1);
    }
});
var bundleFile = new Argument<FileInfo>("FILE") { Description = "a bundle made by 'releases pack'" };
var releaseAdd = new Command("add", "Store a bundle on the relay (dataDir/releases/VERSION/ARCH.bundle, and the shared database when there is one), replacing one of the same version and architecture.") { bundleFile, configOption };
releaseAdd.SetAction(parse => WithFleet(parse.GetValue(configOption), (_, store, origin) =>
{
    var config = RelayConfigLoader.LoadFile(parse.GetValue(configOption)!.FullName, out var ignored)!;
    try
    {
        using var releaseStore = Pinhole.Relay.Updates.ReleaseStore.Open(config);
        var (stored, replaced) = releaseStore.Add(parse.GetValue(bundleFile)!.FullName);
        var was = replaced is null ? "" : $"; replaced the bundle stored before (packed {replaced.Manifest.Created:u}, {replaced.Size} bytes, sha256 {Convert.ToHexStringLower(replaced.Sha256)})";
        store.Audit(new AuditEntry(DateTimeOffset.UtcNow, origin.Actor, origin.Source, "release.add", stored.Manifest.Version,
            $"{stored.Manifest.Architecture}, {stored.Size} bytes, sha256 {Convert.ToHexStringLower(stored.Sha256)}{was}"));
        Console.WriteLine($"{stored.Manifest.Version}\t{stored.Manifest.Architecture}\t{stored.Size} bytes");
        if (replaced is not null)
            Console.WriteLine($"replaced the {stored.Manifest.Version} {stored.Manifest.Architecture} bundle stored before (packed {replaced.Manifest.Created:u}, {replaced.Size} bytes, sha256 {Convert.ToHexStringLower(replaced.Sha256)[..16]}…)" +
                (replaced.Sha256.AsSpan().SequenceEqual(stored.Sha256) ? " by the same bytes" : ""));
        return 0;
    }
    catch (Pinhole.Transport.Updates.ReleaseBundleException e)
    {
        return Fail($"{parse.GetValue(bundleFile)!.FullName}: {e.Message}", 1);
    }
}));
var releaseList = new Command("list", "List stored releases: version, architecture, bytes, packed (one line per bundle).") { configOption };
releaseList.SetAction(parse => WithFleet(parse.GetValue(configOption), (_, _, _) =>
{
    var config = RelayConfigLoader.LoadFile(parse.GetValue(configOption)!.FullName, out var ignored)!;
    using var releaseStore = Pinhole.Relay.Updates.ReleaseStore.Open(config);
    foreach (var r in releaseStore.List())
        Console.WriteLine($"{r.Manifest.Version}\t{r.Manifest.Architecture}\t{r.Size}\t{r.Manifest.Created:u}");
    return 0;
}));
releases.Subcommands.Add(keygen);
releases.Subcommands.Add(pack);
releases.Subcommands.Add(releaseAdd);
releases.Subcommands.Add(releaseList);
root.Subcommands.Add(releases);

var rollout = new Command("rollout", "Roll a stored release out to devices; a running relay picks it up within a second.");
var rolloutVersion = new Argument<string>("VERSION") { Description = "a release stored with 'releases add'" };
var devicesOption = new Option<string?>("--devices") { Description = "comma-separated device ids" };
var allOption = new Option<bool>("--all") { Description = "every device" };
var percentOption = new Option<int>("--percent") { Description = "stage: offer to this share of the targets (the first by id); default 100", DefaultValueFactory = _ => 100 };
var maxFailOption = new Option<int>("--max-failures") { Description = "halt when more than this % of offered devices fail (default 20)", DefaultValueFactory = _ => Pinhole.Relay.Updates.Rollouts.DefaultMaxFailurePercent };
var forceOption = new Option<bool>("--force") { Description = "offer even where the device runs a newer version, or rolled this one back" };
var rolloutStart = new Command("start", "Start a rollout: rollout start V (--devices a,b | --all) [--percent N].") { rolloutVersion, devicesOption, allOption, percentOption, maxFailOption, forceOption, configOption };
rolloutStart.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, store, origin) =>
{
    var config = RelayConfigLoader.LoadFile(parse.GetValue(configOption)!.FullName, out var ignored)!;
    var list = parse.GetValue(devicesOption);
    var all = parse.GetValue(allOption);
    if (all == (list is not null)) return Fail("give either --devices a,b or --all", 2);
    using var updates = Pinhole.Relay.Updates.UpdateStore.Open(config);
    using var releaseStore = Pinhole.Relay.Updates.ReleaseStore.Open(config);
    var (started, problem) = Pinhole.Relay.Updates.Rollouts.Start(updates, releaseStore, registry, store,
        parse.GetValue(rolloutVersion)!, list?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), parse.GetValue(percentOption),
        parse.GetValue(maxFailOption), parse.GetValue(forceOption), origin, DateTimeOffset.UtcNow);
    if (started is null) return Fail(problem!, 1);
    Console.WriteLine($"rollout {started.Id}: {started.Version} to {(started.Devices is null ? "all devices" : string.Join(',', started.Devices))} ({started.Percent}%)");
    return 0;
}));
var rolloutStatus = new Command("status", "The latest rollout and each staged device's state.") { configOption };
rolloutStatus.SetAction(parse => WithFleet(parse.GetValue(configOption), (registry, _, _) =>
{
    var config = RelayConfigLoader.LoadFile(parse.GetValue(configOption)!.FullName, out var ignored)!;
    using var updates = Pinhole.Relay.Updates.UpdateStore.Open(config);
    if (updates.Latest() is not { } latest) return Fail("no rollout yet", 1);
    Console.WriteLine($"rollout {latest.Id}: {latest.Version} {latest.State}{(latest.Detail.Length > 0 ? ": " + latest.Detail : "")}");
    var states = updates.All().ToDictionary(d => d.Device, StringComparer.Ordinal);
    var targets = (latest.Devices ?? [.. registry.Describe().Select(d => d.Id)]).Order(StringComparer.Ordinal).ToList();
    foreach (var id in targets.Take((int)Math.Ceiling(targets.Count * latest.Percent / 100.0)))
    {
        var view = Pinhole.Relay.Updates.Rollouts.DeviceView(id, states.GetValueOrDefault(id), latest.Version);
        Console.WriteLine($"{id}\t{view["state"]}\t{view["percent"]}%\trunning={view["running"] ?? "-"}\t{view["detail"]}");
    }
    return 0;
}));
rollout.Subcommands.Add(rolloutStart);
rollout.Subcommands.Add(rolloutStatus);
root.Subcommands.Add(rollout);

// ---------------------------------------------------------------- db (docs/scale-out.md)
var db = new Command("db", "The shared PostgreSQL database (relay.json \"database\": \"postgres://…\").");
var fromOption = new Option<string>("--from") { Description = "where the data is now: sqlite (dataDir/relay.db and telemetry.db)", Required = true };
var migrate = new Command("migrate", "Copy a single relay's SQLite data (dataDir) into the PostgreSQL database relay.json names; refuses a database that already holds data.") { fromOption, configOption };
migrate.SetAction(parse =>
{
    if (parse.GetValue(fromOption) != "sqlite") return Fail($"--from \"{parse.GetValue(fromOption)}\": only --from sqlite is supported", 2);
    if (parse.GetValue(configOption) is not { } file) return Fail("--config FILE is required", 2);
    var config = RelayConfigLoader.LoadFile(file.FullName, out var problems);
    if (config is null) return Problems(file.FullName, problems);
    if (config.Database.Kind != DatabaseKind.Postgres)
        return Fail($"{file.FullName}: \"database\" must name the target, \"postgres://USER:PASS@HOST:PORT/DB\" (the SQLite files are read from dataDir {config.DataDir})", 1);
    try
    {
        if (SqliteToPostgres.Run(config.DataDir, config.Database, Console.Out) is { } refused) return Fail(refused, 1);
        Console.Error.WriteLine($"pinhole-relay: copied {config.DataDir} into {config.Database}");
        return 0;
    }
    catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException or IOException or UnauthorizedAccessException
        or System.Net.Sockets.SocketException or TimeoutException)
    {
        return Fail($"migration failed, nothing copied: {e.Message}", 1);
    }
});
db.Subcommands.Add(migrate);
root.Subcommands.Add(db);

var tunnel = new Command("tunnel", "Forward a local TCP port to a LAN service a device exposes (edge \"expose\"), through the relay: tunnel ID NAME --listen 127.0.0.1:PORT.");
var tunnelDevice = new Argument<string>("ID") { Description = "the device" };
var tunnelName = new Argument<string>("NAME") { Description = "the name in the device's \"expose\" list" };
var listenOption = new Option<string>("--listen") { Description = "local HOST:PORT to listen on (port 0 picks one and prints it)", Required = true };
var relayOption = new Option<string?>("--relay") { Description = "the relay's URL, e.g. https://relay.example.com (default: PINHOLE_RELAY, else the http of --config)" };
var tokenOption = new Option<string?>("--token") { Description = "an API token (pinhole-relay tokens add NAME); default: PINHOLE_TOKEN" };
var userOption = new Option<string?>("--user") { Description = "an admin's user name instead of a token (password from --password or PINHOLE_PASSWORD)" };
var passwordOption = new Option<string?>("--password") { Description = "the admin's password (prefer PINHOLE_PASSWORD: arguments show in ps)" };
var timeLimitOption = new Option<int?>("--time-limit") { Description = "the relay ends each connection after this many seconds" };
var tunnelConfigOption = new Option<FileInfo?>("--config", "-c") { Description = "relay.json: its http address is the relay URL when --relay is not given" };
tunnel.Options.Add(listenOption);
tunnel.Options.Add(relayOption);
tunnel.Options.Add(tokenOption);
tunnel.Options.Add(userOption);
tunnel.Options.Add(passwordOption);
tunnel.Options.Add(timeLimitOption);
tunnel.Options.Add(tunnelConfigOption);
tunnel.Arguments.Add(tunnelDevice);
tunnel.Arguments.Add(tunnelName);
tunnel.SetAction(async (parse, ct) =>
{
    var relayText = parse.GetValue(relayOption) ?? Environment.GetEnvironmentVariable("PINHOLE_RELAY");
    if (relayText is null && parse.GetValue(tunnelConfigOption) is { } file)
    {
        var config = RelayConfigLoader.LoadFile(file.FullName, out var problems);
        if (config is null) return Problems(file.FullName, problems);
        relayText = config.Http.Replace("://0.0.0.0:", "://127.0.0.1:", StringComparison.Ordinal).Replace("://[::]:", "://[::1]:", StringComparison.Ordinal);
    }
    if (relayText is null) return Fail("give the relay's URL: --relay https://RELAY (or PINHOLE_RELAY, or --config relay.json)", 2);
    if (!Uri.TryCreate(relayText, UriKind.Absolute, out var relayUri) || relayUri.Scheme is not ("http" or "https"))
        return Fail($"--relay \"{relayText}\" is not an http:// or https:// URL", 2);
    var token = parse.GetValue(tokenOption) ?? Environment.GetEnvironmentVariable("PINHOLE_TOKEN");
    var user = parse.GetValue(userOption);
    var password = parse.GetValue(passwordOption) ?? Environment.GetEnvironmentVariable("PINHOLE_PASSWORD");
    if (token is null && user is null) return Fail("give --token TOKEN (or PINHOLE_TOKEN), or --user NAME with PINHOLE_PASSWORD", 2);
    if (user is not null && password is null) return Fail("--user needs a password: PINHOLE_PASSWORD or --password", 2);
    if (!System.Net.IPEndPoint.TryParse(parse.GetValue(listenOption)!, out var listen) || listen.Port is < 0 or > 65535 || !parse.GetValue(listenOption)!.Contains(':', StringComparison.Ordinal))
        return Fail($"--listen \"{parse.GetValue(listenOption)}\" is not IP:PORT, e.g. 127.0.0.1:2222", 2);
    if (parse.GetValue(timeLimitOption) is <= 0) return Fail("--time-limit must be a positive number of seconds", 2);
    var id = parse.GetValue(tunnelDevice)!;
    var name = parse.GetValue(tunnelName)!;
    var client = new Pinhole.Relay.Tunnels.TunnelClient(new(relayUri, token, user, password,
        parse.GetValue(timeLimitOption) is { } seconds ? TimeSpan.FromSeconds(seconds) : null), id, name, Console.Error);
    try
    {
        await client.LoginAsync(ct);
        // One connection up front, so a wrong token, device or name is reported now, not at the first use.
        using (var probe = await client.ConnectAsync(ct))
            await probe.CloseOutputAsync(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, "probe", ct);
        await client.RunAsync(listen, bound => Console.Error.WriteLine($"pinhole-relay tunnel: listening on {bound} -> {id}/{name} via {relayUri}"), ct);
    }
    catch (Exception e) when (e is InvalidOperationException or HttpRequestException or System.Net.Sockets.SocketException)
    {
        return Fail(e.Message, 1);
    }
    catch (OperationCanceledException)
    {
    }
    return 0;
});
root.Subcommands.Add(tunnel);

// "pinhole-relay help" works, as "pinhole-edge help" does.
if (args is ["help"]) args = ["--help"];
var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    // The same style as pinhole-edge: one line and the usage exit code (2), not every error plus the whole help.
    return Fail($"{string.Join("; ", parsed.Errors.Select(e => e.Message.TrimEnd('.')).Distinct())}; see pinhole-relay --help", 2);
}
try
{
    return await parsed.InvokeAsync(new InvocationConfiguration
    {
        // Failures end in one line, never System.CommandLine's stack trace.
        EnableDefaultExceptionHandler = false,
    });
}
catch (Exception e) when (e is not OperationCanceledException)
{
    return Fail($"unexpected error: {e.Message}", 1);
}

static int WithFleet(FileInfo? file, Func<DeviceRegistry, IFleetStore, ChangeOrigin, int> action)
{
    if (file is null) return Fail("--config FILE is required", 2);
    var config = RelayConfigLoader.LoadFile(file.FullName, out var problems);
    if (config is null) return Problems(file.FullName, problems);
    try
    {
        using var store = FleetStores.Open(config);
        // The audit log names who ran the command on this machine.
        var origin = new ChangeOrigin("cli:" + Environment.UserName, "local");
        return action(new DeviceRegistry(store, config.Devices), store, origin);
    }
    catch (Exception e) when (e is InvalidOperationException or System.Data.Common.DbException or IOException or UnauthorizedAccessException
        or System.Net.Sockets.SocketException or TimeoutException)
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
