using System.Globalization;
using System.Text.Json;

namespace Pinhole.EdgeHost.Configuration;

/// <summary>
/// Reads edge.json strictly: unknown keys, missing required keys, wrong types and bad values are all
/// reported, each with its JSON path, in one pass. The same code validates <c>check-config</c>, the
/// config at start-up and every save from the local config page.
/// </summary>
public static class EdgeConfigLoader
{
    /// <summary>Larger than any sane edge.json; checked before reading so a wrong path cannot eat memory.</summary>
    public const int MaxFileBytes = 1 << 20;

    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        AllowTrailingCommas = false,
        CommentHandling = JsonCommentHandling.Skip,
        MaxDepth = 16,
    };

    /// <summary>Loads and validates a file. Never throws for a missing, unreadable or malformed file; file-level problems have an empty path.</summary>
    public static ConfigLoadResult LoadFile(string path)
    {
        string text;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
                return Fail(Directory.Exists(path) ? "is a directory, not a config file" : "file not found");
            if (info.Length > MaxFileBytes)
                return Fail($"file is larger than {MaxFileBytes} bytes");
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail($"cannot read: {e.Message}");
        }
        return Parse(text, Path.GetDirectoryName(Path.GetFullPath(path)));
    }

    /// <summary>Parses and validates JSON text. Relative file paths in it resolve against <paramref name="baseDirectory"/>.</summary>
    public static ConfigLoadResult Parse(string json, string? baseDirectory = null)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException e)
        {
            var reason = e.Message;
            var cut = reason.IndexOf(" Path:", StringComparison.Ordinal);
            if (cut < 0) cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
            if (cut > 0) reason = reason[..cut];
            return Fail($"invalid JSON at line {(e.LineNumber ?? 0) + 1}, column {(e.BytePositionInLine ?? 0) + 1}: {reason}");
        }
        using (document)
        {
            var problems = new List<ConfigProblem>();
            var config = ReadRoot(document.RootElement, problems, baseDirectory ?? Directory.GetCurrentDirectory());
            return new ConfigLoadResult(config, problems);
        }
    }

    private static ConfigLoadResult Fail(string message) => new(null, [new ConfigProblem("", message)]);

    private static EdgeConfig? ReadRoot(JsonElement root, List<ConfigProblem> problems, string baseDirectory)
    {
        var o = JsonObjectReader.Open(root, "", problems);
        if (o is null) return null;
        var config = new EdgeConfig
        {
            DeviceId = o.String("deviceId", required: true) ?? "",
            Token = o.String("token", required: true) ?? "",
        };
        Validate.Identifier(config.DeviceId, o.PathOf("deviceId"), problems, o.Has("deviceId"));
        if (o.Has("token") && string.IsNullOrWhiteSpace(config.Token))
            problems.Add(new(o.PathOf("token"), "must not be empty"));

        var relays = o.Array("relays", required: true);
        if (relays is not null)
        {
            if (relays.Count == 0) problems.Add(new(o.PathOf("relays"), "needs at least one relay URL"));
            var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
            for (var i = 0; i < relays.Count; i++)
            {
                var path = $"{o.PathOf("relays")}[{i}]";
                var url = JsonObjectReader.AsString(relays[i], path, problems);
                if (url is null) continue;
                if (Validate.Url(url, path, problems, ["ws", "wss"], "use wss://, or ws:// for testing") && !seen.Add(url))
                    problems.Add(new(path, $"duplicate relay \"{url}\""));
                config.Relays.Add(url);
            }
        }

        config.TrustedCa = o.String("trustedCa");
        if (config.TrustedCa is not null)
        {
            if (config.TrustedCa.Length == 0)
                problems.Add(new(o.PathOf("trustedCa"), "must not be empty (leave the key out to use the system CAs)"));
            else
            {
                config.TrustedCa = Path.GetFullPath(config.TrustedCa, baseDirectory);
                if (!File.Exists(config.TrustedCa))
                    problems.Add(new(o.PathOf("trustedCa"), $"file not found: {config.TrustedCa}"));
            }
        }

        config.Proxy = o.String("proxy");
        if (config.Proxy is not null)
            Validate.Url(config.Proxy, o.PathOf("proxy"), problems, ["http"], "use http://HOST:PORT, an HTTP CONNECT proxy");

        ReadUplink(o, config, problems);
        ReadCameras(o, config, problems);
        ReadSensors(o, config, problems);
        ReadMqtt(o, config, problems);
        ReadWeb(o, config, problems);
        ReadFleet(o, config, problems);
        ReadUpdate(o, config, problems, baseDirectory);
        ReadExpose(o, config, problems);
        ReadRtspServer(o, config, problems);

        var dataDir = o.String("dataDir");
        if (dataDir is not null)
        {
            if (dataDir.Length == 0) problems.Add(new(o.PathOf("dataDir"), "must not be empty"));
            else config.DataDir = Path.GetFullPath(dataDir, baseDirectory);
        }

        o.ReportUnknownKeys();
        return config;
    }

    private static void ReadCameras(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var cameras = root.Array("cameras");
        if (cameras is null) return;
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < cameras.Count; i++)
        {
            var o = JsonObjectReader.Open(cameras[i], $"cameras[{i}]", problems);
            if (o is null) continue;
            var camera = new CameraConfig
            {
                Name = o.String("name", required: true) ?? "",
                Source = o.String("source", required: true) ?? "",
            };
            if (Validate.Identifier(camera.Name, o.PathOf("name"), problems, o.Has("name")) && !names.Add(camera.Name))
                problems.Add(new(o.PathOf("name"), $"duplicate camera name \"{camera.Name}\""));
            if (o.Has("source")) Validate.CameraSource(camera.Source, o.PathOf("source"), problems);
            if (o.String("transport") is { } transport)
            {
                camera.Transport = transport;
                if (!CameraTransports.Contains(transport))
                    problems.Add(new(o.PathOf("transport"), $"must be \"auto\", \"tcp\" or \"udp\" (got \"{transport}\")"));
                else if (camera.Source.StartsWith("exec:", StringComparison.Ordinal))
                    problems.Add(new(o.PathOf("transport"), "is only used by rtsp:// sources (leave it out for exec:)"));
            }
            o.ReportUnknownKeys();
            config.Cameras.Add(camera);
        }
    }

    /// <summary>The values of <c>cameras[].transport</c>; <c>auto</c> is the default.</summary>
    public static readonly IReadOnlyList<string> CameraTransports = ["auto", "tcp", "udp"];

    // Every kind-specific key; a kind names the ones it uses, the rest are "not used by" errors.
    private static readonly string[] KindKeys = ["path", "scale", "offset", "interval", "chip", "line", "edge", "debounce", "bus", "address", "pin"];

    private static string[] KeysNotUsedBy(params string[] used) => [.. KindKeys.Except(used)];

    private static void ReadSensors(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var sensors = root.Array("sensors");
        if (sensors is null) return;
        var names = new HashSet<string>(StringComparer.Ordinal);
        var readings = new Dictionary<string, string>(StringComparer.Ordinal); // reading (topic) name -> sensor that publishes it
        for (var i = 0; i < sensors.Count; i++)
        {
            var o = JsonObjectReader.Open(sensors[i], $"sensors[{i}]", problems);
            if (o is null) continue;
            var sensor = new SensorConfig
            {
                Name = o.String("name", required: true) ?? "",
                Kind = o.String("kind", required: true) ?? "",
                Unit = o.String("unit"),
            };
            var validName = Validate.Identifier(sensor.Name, o.PathOf("name"), problems, o.Has("name"));
            if (validName && !names.Add(sensor.Name))
            {
                problems.Add(new(o.PathOf("name"), $"duplicate sensor name \"{sensor.Name}\""));
                validName = false;
            }

            var kind = $"kind \"{sensor.Kind}\"";
            switch (sensor.Kind)
            {
                case "file":
                    o.NotUsedBy(KeysNotUsedBy("path", "scale", "offset", "interval"), kind);
                    sensor.Path = o.String("path", required: true);
                    if (sensor.Path is { Length: 0 }) problems.Add(new(o.PathOf("path"), "must not be empty"));
                    sensor.Scale = o.Number("scale") ?? 1.0;
                    if (sensor.Scale == 0) problems.Add(new(o.PathOf("scale"), "must not be 0 (every reading would be the offset)"));
                    sensor.Offset = o.Number("offset") ?? 0.0;
                    sensor.Interval = o.Duration("interval", minimum: TimeSpan.FromMilliseconds(10)) ?? "5s";
                    break;
                case "gpio":
                    o.NotUsedBy(KeysNotUsedBy("chip", "line", "edge", "debounce"), kind);
                    ReadChip(o, sensor, problems);
                    sensor.Line = o.Integer("line", required: true, minimum: 0, maximum: 1023);
                    sensor.Edge = o.String("edge") ?? "both";
                    if (sensor.Edge is not ("rising" or "falling" or "both"))
                        problems.Add(new(o.PathOf("edge"), $"must be \"rising\", \"falling\" or \"both\" (got \"{sensor.Edge}\")"));
                    sensor.Debounce = o.Duration("debounce", minimum: TimeSpan.Zero) ?? "0";
                    break;
                case "bme280" or "bmp280" or "sht3x" or "ads1115":
                    o.NotUsedBy(KeysNotUsedBy("bus", "address", "interval"), kind);
                    NoUnit(o, sensor, problems);
                    sensor.Bus = o.Integer("bus", required: false, minimum: 0, maximum: 255) ?? 1;
                    var allowed = SensorKinds.I2cAddresses[sensor.Kind];
                    sensor.Address = o.String("address") ?? $"0x{allowed[0]:x2}";
                    if (!SensorKinds.TryParseI2cAddress(sensor.Address, out var address))
                        problems.Add(new(o.PathOf("address"), $"\"{sensor.Address}\" is not an I2C address like \"0x{allowed[0]:x2}\""));
                    else if (!allowed.Contains(address))
                        problems.Add(new(o.PathOf("address"), $"the {sensor.Kind} answers only at {string.Join(" or ", allowed.Select(a => $"0x{a:x2}"))}, not {sensor.Address}"));
                    sensor.Interval = o.Duration("interval", minimum: TimeSpan.FromMilliseconds(100)) ?? "5s";
                    break;
                case "dht22":
                    o.NotUsedBy(KeysNotUsedBy("chip", "pin", "interval"), kind);
                    NoUnit(o, sensor, problems);
                    if (o.Has("chip")) ReadChip(o, sensor, problems);
                    else sensor.Chip = "/dev/gpiochip0";
                    sensor.Pin = o.Integer("pin", required: true, minimum: 0, maximum: 1023);
                    // The chip answers at most every 2 s; polled faster it returns the old reading or nothing.
                    sensor.Interval = o.Duration("interval", minimum: TimeSpan.FromSeconds(2)) ?? "5s";
                    break;
                case "ds18b20":
                    o.NotUsedBy(KeysNotUsedBy("address", "interval"), kind);
                    NoUnit(o, sensor, problems);
                    sensor.Address = o.String("address", required: true);
                    if (sensor.Address is not null && !SensorKinds.IsW1ThermometerId(sensor.Address))
                        problems.Add(new(o.PathOf("address"), $"must be a 1-Wire id like \"28-0316a2792dff\" as listed in /sys/bus/w1/devices (got \"{sensor.Address}\")"));
                    sensor.Interval = o.Duration("interval", minimum: TimeSpan.FromSeconds(1)) ?? "5s";
                    break;
                default:
                    if (o.Has("kind"))
                        problems.Add(new(o.PathOf("kind"), $"unsupported kind \"{sensor.Kind}\" (use {string.Join(", ", SensorKinds.All.Select(k => $"\"{k}\""))})"));
                    // Still mark the kind-specific keys as known, so the kind error is not buried under unknown-key lines.
                    o.Ignore(KindKeys);
                    validName = false;
                    break;
            }
            if (validName)
            {
                // A chip's readings are NAME_QUANTITY topics: they must not land on another sensor's topic.
                foreach (var reading in SensorKinds.ReadingsOf(sensor))
                {
                    if (readings.TryGetValue(reading.Name, out var other))
                        problems.Add(new(o.PathOf("name"), $"reading \"{reading.Name}\" would share its MQTT topic with sensor \"{other}\""));
                    else
                        readings[reading.Name] = sensor.Name;
                }
            }
            o.ReportUnknownKeys();
            config.Sensors.Add(sensor);
        }
    }

    private static void ReadChip(JsonObjectReader o, SensorConfig sensor, List<ConfigProblem> problems)
    {
        sensor.Chip = o.String("chip", required: true);
        if (sensor.Chip is not null && !sensor.Chip.StartsWith("/dev/", StringComparison.Ordinal))
            problems.Add(new(o.PathOf("chip"), $"must be a device path such as /dev/gpiochip0 (got \"{sensor.Chip}\")"));
    }

    private static void NoUnit(JsonObjectReader o, SensorConfig sensor, List<ConfigProblem> problems)
    {
        if (o.Has("unit"))
            problems.Add(new(o.PathOf("unit"), $"is not used by kind \"{sensor.Kind}\" (each of its readings has its own unit)"));
        sensor.Unit = null;
    }

    private static void ReadMqtt(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var o = root.Object("mqtt");
        if (o is null) return;
        var mqtt = new MqttConfig
        {
            Url = o.String("url", required: true) ?? "",
            Username = o.String("username"),
            Password = o.String("password"),
            TopicPrefix = o.String("topicPrefix") ?? "pinhole",
            ProtocolVersion = o.String("protocolVersion") ?? "5",
        };
        if (mqtt.ProtocolVersion is not ("5" or "3.1.1"))
            problems.Add(new(o.PathOf("protocolVersion"), $"must be \"5\" or \"3.1.1\" (got \"{mqtt.ProtocolVersion}\")"));
        if (o.Has("url"))
            Validate.Url(mqtt.Url, o.PathOf("url"), problems, ["ws", "wss", "mqtt", "mqtts"], "use wss://, ws://, mqtts:// or mqtt://");
        if (mqtt.TopicPrefix.Length == 0 || mqtt.TopicPrefix.AsSpan().IndexOfAny("+#\0") >= 0 ||
            mqtt.TopicPrefix.StartsWith('/') || mqtt.TopicPrefix.EndsWith('/'))
            problems.Add(new(o.PathOf("topicPrefix"), $"must be a non-empty MQTT topic without + # or a leading/trailing / (got \"{mqtt.TopicPrefix}\")"));
        o.ReportUnknownKeys();
        config.Mqtt = mqtt;
    }

    private static void ReadUplink(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var o = root.Object("uplink");
        if (o is null) return;
        var transport = o.String("transport");
        if (transport is not null)
        {
            if (UplinkConfig.Transports.Contains(transport)) config.Uplink.Transport = transport;
            else problems.Add(new(o.PathOf("transport"), $"must be one of {string.Join(", ", UplinkConfig.Transports)} (got \"{transport}\")"));
        }
        o.ReportUnknownKeys();
    }

    private static void ReadWeb(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var o = root.Object("web");
        if (o is null) return;
        config.Web = new WebConfig
        {
            Listen = o.String("listen") ?? config.Web.Listen,
            Password = o.String("password"),
            AllowExec = o.Boolean("allowExec") ?? false,
        };
        if (o.Has("listen") && !WebListen.TryParse(config.Web.Listen, out _, out var error))
            problems.Add(new(o.PathOf("listen"), error));
        if (config.Web.Password is not null)
        {
            if (config.Web.Password.Length == 0)
                problems.Add(new(o.PathOf("password"), "must not be empty (leave the key out to disable the page login)"));
            else if (config.Web.Password.StartsWith(Web.PasswordHash.Prefix, StringComparison.Ordinal) &&
                     !Web.PasswordHash.TryParse(config.Web.Password, out _))
                problems.Add(new(o.PathOf("password"), $"looks like a stored hash but is malformed (expected {Web.PasswordHash.Prefix}ITERATIONS$SALT$HASH in base64)"));
        }
        o.ReportUnknownKeys();
    }

    private static void ReadFleet(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var o = root.Object("fleet");
        if (o is null) return;
        config.Fleet = new FleetConfig
        {
            AllowExec = o.Boolean("allowExec") ?? false,
            // At least 10 s (a relay needs a moment to answer); at most 2 minutes, the longest a device may stay unreachable.
            ConnectivityGuard = o.Duration("connectivityGuard", minimum: TimeSpan.FromSeconds(10)) ?? "90s",
        };
        if (Configuration.Duration.TryParse(config.Fleet.ConnectivityGuard, out var guard, out _) && guard > TimeSpan.FromMinutes(2))
            problems.Add(new(o.PathOf("connectivityGuard"), $"must be at most 2m (got \"{config.Fleet.ConnectivityGuard}\")"));
        o.ReportUnknownKeys();
    }

    // The only LAN services the relay may reach through this device (docs/tunnels.md). Local to the
    // device on purpose: the relay cannot push it, so a compromised relay cannot widen it.
    private static void ReadExpose(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var list = root.Array("expose");
        if (list is null) return;
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < list.Count; i++)
        {
            var o = JsonObjectReader.Open(list[i], $"expose[{i}]", problems);
            if (o is null) continue;
            var expose = new ExposeConfig
            {
                Name = o.String("name", required: true) ?? "",
                Target = o.String("target", required: true) ?? "",
            };
            if (o.Has("name"))
            {
                if (expose.Name.Length is 0 or > 64 || expose.Name[0] == '.' || !expose.Name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
                    problems.Add(new(o.PathOf("name"), $"must be 1-64 of A-Z a-z 0-9 . _ -, not starting with a dot (got \"{expose.Name}\")"));
                else if (expose.Name == ExposeConfig.DevicePage)
                    problems.Add(new(o.PathOf("name"), $"\"{expose.Name}\" is reserved for the device's own page (/devices/ID/ui/ on the relay); pick another name"));
                else if (!names.Add(expose.Name))
                    problems.Add(new(o.PathOf("name"), $"duplicate expose name \"{expose.Name}\""));
            }
            if (o.Has("target") && !ExposeConfig.TryParseTarget(expose.Target, out _, out _, out var error))
                problems.Add(new(o.PathOf("target"), error));
            o.ReportUnknownKeys();
            config.Expose.Add(expose);
        }
    }

    // WAN to LAN media (docs/rtsp.md): local to the device, like expose; never anonymous.
    private static void ReadRtspServer(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems)
    {
        var o = root.Object("rtspServer");
        if (o is null) return;
        var server = new RtspServerConfig { Listen = o.String("listen") ?? "0.0.0.0:8554" };
        if (!TryParseListen(server.Listen, out _, out var error)) problems.Add(new(o.PathOf("listen"), error));
        var list = o.Array("users", required: true);
        if (list is { Count: 0 }) problems.Add(new(o.PathOf("users"), "must list at least one user: the LAN RTSP server never serves anonymously"));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; list is not null && i < list.Count; i++)
        {
            var u = JsonObjectReader.Open(list[i], $"{o.PathOf("users")}[{i}]", problems);
            if (u is null) continue;
            var user = new RtspUserConfig { Name = u.String("name", required: true) ?? "", Password = u.String("password", required: true) ?? "" };
            if (u.Has("name"))
            {
                if (user.Name.Length == 0 || user.Name.Any(c => c == ':' || char.IsControl(c)))
                    problems.Add(new(u.PathOf("name"), "must be non-empty, without ':' or control characters"));
                else if (!names.Add(user.Name))
                    problems.Add(new(u.PathOf("name"), $"\"{user.Name}\" is listed twice"));
            }
            if (u.Has("password") && user.Password.Length == 0) problems.Add(new(u.PathOf("password"), "must not be empty"));
            u.ReportUnknownKeys();
            server.Users.Add(user);
        }
        o.ReportUnknownKeys();
        config.RtspServer = server;
    }

    /// <summary>Parses <c>IP:PORT</c> (IPv6 in brackets; port 0-65535); false with a one-line reason.</summary>
    public static bool TryParseListen(string value, out System.Net.IPEndPoint endPoint, out string error)
    {
        endPoint = new System.Net.IPEndPoint(System.Net.IPAddress.Any, 0);
        if (!System.Net.IPEndPoint.TryParse(value, out var parsed) || !value.Contains(':') || value.EndsWith(':')
            || (value.Count(c => c == ':') > 1 && !value.StartsWith('[')))
        {
            error = $"must be IP:PORT, e.g. 0.0.0.0:8554 or [::]:8554 (got \"{value}\")";
            return false;
        }
        endPoint = parsed;
        error = "";
        return true;
    }

    private static void ReadUpdate(JsonObjectReader root, EdgeConfig config, List<ConfigProblem> problems, string baseDirectory)
    {
        var o = root.Object("update");
        if (o is null) return;
        var update = new UpdateConfig();
        var key = o.String("publicKey", required: true);
        if (key is { Length: > 0 })
        {
            update.PublicKey = Path.GetFullPath(key, baseDirectory);
            if (!File.Exists(update.PublicKey))
                problems.Add(new(o.PathOf("publicKey"), $"file not found: {update.PublicKey}"));
        }
        else if (key is not null)
            problems.Add(new(o.PathOf("publicKey"), "must name the release public key (PEM)"));
        var rootDir = o.String("root");
        if (rootDir is not null)
        {
            if (rootDir.Length == 0) problems.Add(new(o.PathOf("root"), "must not be empty"));
            else update.Root = Path.GetFullPath(rootDir, baseDirectory);
        }
        // At least 5 s (a release needs a moment to start and connect); at most 1 hour.
        update.TrialTimeout = o.Duration("trialTimeout", minimum: TimeSpan.FromSeconds(5)) ?? "3m";
        if (Configuration.Duration.TryParse(update.TrialTimeout, out var trial, out _) && trial > TimeSpan.FromHours(1))
            problems.Add(new(o.PathOf("trialTimeout"), $"must be at most 1h (got \"{update.TrialTimeout}\")"));
        config.Update = update;
        o.ReportUnknownKeys();
    }

    /// <summary>Shared value checks.</summary>
    internal static class Validate
    {
        /// <summary>Device ids and camera/sensor names end up in URLs and MQTT topics.</summary>
        public static bool Identifier(string value, string path, List<ConfigProblem> problems, bool present)
        {
            if (!present) return false;
            if (value.Length is >= 1 and <= 64 && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                return true;
            problems.Add(new(path, $"must be 1-64 characters of A-Z a-z 0-9 _ - (got \"{value}\")"));
            return false;
        }

        public static bool Url(string value, string path, List<ConfigProblem> problems, string[] schemes, string hint)
        {
            if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.IsFile || uri.IsUnc)
            {
                problems.Add(new(path, $"\"{Redact(value)}\" is not an absolute URL ({hint})"));
                return false;
            }
            if (!schemes.Contains(uri.Scheme))
            {
                problems.Add(new(path, $"unsupported scheme \"{uri.Scheme}\" ({hint})"));
                return false;
            }
            if (uri.Host.Length == 0)
            {
                problems.Add(new(path, $"\"{Redact(value)}\" has no host"));
                return false;
            }
            return true;
        }

        public static void CameraSource(string value, string path, List<ConfigProblem> problems)
        {
            if (value.StartsWith("exec:", StringComparison.Ordinal))
            {
                if (string.IsNullOrWhiteSpace(value[5..]))
                    problems.Add(new(path, "exec: needs a command, e.g. exec:rpicam-vid -t 0 --inline --codec h264 -o -"));
                return;
            }
            Url(value, path, problems, ["rtsp", "rtsps"], "use rtsp:// or exec:");
        }

        /// <summary>Camera URLs carry passwords; problem lines must not.</summary>
        public static string Redact(string value)
        {
            var at = value.LastIndexOf('@');
            if (at <= 0) return value;
            var slashes = value.IndexOf("//", StringComparison.Ordinal);
            var colon = value.IndexOf(':', StringComparison.Ordinal);
            var start = slashes >= 0 && slashes < at ? slashes + 2 : colon >= 0 && colon < at ? colon + 1 : 0;
            return value[..start] + "***@" + value[(at + 1)..];
        }
    }
}

/// <summary>Reads one JSON object, remembering which keys were read so the rest can be reported as unknown.</summary>
internal sealed class JsonObjectReader
{
    private readonly JsonElement _element;
    private readonly string _path;
    private readonly List<ConfigProblem> _problems;
    private readonly HashSet<string> _known = new(StringComparer.Ordinal);

    private JsonObjectReader(JsonElement element, string path, List<ConfigProblem> problems)
    {
        _element = element;
        _path = path;
        _problems = problems;
    }

    public static JsonObjectReader? Open(JsonElement element, string path, List<ConfigProblem> problems)
    {
        if (element.ValueKind == JsonValueKind.Object) return new JsonObjectReader(element, path, problems);
        problems.Add(new(path, $"expected an object, got {Describe(element)}"));
        return null;
    }

    public string PathOf(string key) => _path.Length == 0 ? key : $"{_path}.{key}";

    public bool Has(string key) => _element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null;

    private bool TryGet(string key, bool required, out JsonElement value)
    {
        _known.Add(key);
        if (_element.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null) return true;
        if (required) _problems.Add(new(PathOf(key), "is required"));
        return false;
    }

    public string? String(string key, bool required = false) =>
        TryGet(key, required, out var v) ? AsString(v, PathOf(key), _problems) : null;

    public static string? AsString(JsonElement value, string path, List<ConfigProblem> problems)
    {
        if (value.ValueKind == JsonValueKind.String) return value.GetString();
        problems.Add(new(path, $"expected a string, got {Describe(value)}"));
        return null;
    }

    public bool? Boolean(string key)
    {
        if (!TryGet(key, false, out var v)) return null;
        if (v.ValueKind is JsonValueKind.True or JsonValueKind.False) return v.GetBoolean();
        _problems.Add(new(PathOf(key), $"expected true or false, got {Describe(v)}"));
        return null;
    }

    public double? Number(string key)
    {
        if (!TryGet(key, false, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out var d) && double.IsFinite(d)) return d;
        _problems.Add(new(PathOf(key), $"expected a number, got {Describe(v)}"));
        return null;
    }

    public int? Integer(string key, bool required, int minimum, int maximum)
    {
        if (!TryGet(key, required, out var v)) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out var i))
        {
            _problems.Add(new(PathOf(key), $"expected an integer, got {Describe(v)}"));
            return null;
        }
        if (i < minimum || i > maximum)
        {
            _problems.Add(new(PathOf(key), $"must be between {minimum} and {maximum} (got {i})"));
            return null;
        }
        return i;
    }

    /// <summary>A duration string; returns it unchanged when valid so edge.json round-trips as written.</summary>
    public string? Duration(string key, TimeSpan minimum)
    {
        var text = String(key);
        if (text is null) return null;
        if (!Configuration.Duration.TryParse(text, out var value, out var error))
            _problems.Add(new(PathOf(key), error));
        else if (value < minimum)
            _problems.Add(new(PathOf(key), $"must be at least {minimum.TotalMilliseconds.ToString(CultureInfo.InvariantCulture)}ms (got \"{text}\")"));
        return text;
    }

    public List<JsonElement>? Array(string key, bool required = false)
    {
        if (!TryGet(key, required, out var v)) return null;
        if (v.ValueKind == JsonValueKind.Array) return [.. v.EnumerateArray()];
        _problems.Add(new(PathOf(key), $"expected an array, got {Describe(v)}"));
        return null;
    }

    public JsonObjectReader? Object(string key)
    {
        if (!TryGet(key, false, out var v)) return null;
        return Open(v, PathOf(key), _problems);
    }

    /// <summary>Keys that belong to another variant (e.g. a gpio key on a file sensor) are errors, not silently ignored.</summary>
    public void NotUsedBy(string[] keys, string what)
    {
        foreach (var key in keys)
        {
            _known.Add(key);
            if (_element.TryGetProperty(key, out _))
                _problems.Add(new(PathOf(key), $"is not used by {what}"));
        }
    }

    public void Ignore(string[] keys) => _known.UnionWith(keys);

    public void ReportUnknownKeys()
    {
        foreach (var property in _element.EnumerateObject())
        {
            if (_known.Contains(property.Name)) continue;
            var near = _known.FirstOrDefault(k => string.Equals(k, property.Name, StringComparison.OrdinalIgnoreCase));
            _problems.Add(new(PathOf(property.Name), near is null
                ? $"unknown key \"{property.Name}\""
                : $"unknown key \"{property.Name}\" (did you mean \"{near}\"?)"));
        }
    }

    private static string Describe(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => $"the number {e.GetRawText()}",
        JsonValueKind.True or JsonValueKind.False => e.GetRawText(),
        _ => "null",
    };
}
