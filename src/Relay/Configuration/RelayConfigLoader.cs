using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Pinhole.Relay.Configuration;

/// <summary>
/// Reads relay.json strictly: unknown keys, wrong types and bad values are each reported as one
/// line starting with the JSON path, and nothing is thrown for bad input. Comments and trailing
/// commas are accepted because people edit this file by hand.
/// </summary>
public static partial class RelayConfigLoader
{
    private static readonly JsonDocumentOptions DocumentOptions = new()
    {
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        MaxDepth = 16,
    };

    /// <summary>Loads and validates a file. Returns the config, or null with at least one problem.</summary>
    public static RelayConfig? LoadFile(string path, out IReadOnlyList<string> problems)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            problems = [$"{path}: cannot read: {e.Message}"];
            return null;
        }
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        return Load(text, baseDir, out problems);
    }

    /// <summary>Loads and validates JSON text. Relative file paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static RelayConfig? Load(string json, string baseDirectory, out IReadOnlyList<string> problems)
    {
        var errors = new List<string>();
        problems = errors;
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException e)
        {
            errors.Add($"not valid JSON: {e.Message}");
            return null;
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                errors.Add("the file must hold one JSON object");
                return null;
            }
            var config = new RelayConfig();
            foreach (var p in root.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "http": config.Http = String(p, "http", errors) ?? config.Http; break;
                    case "rtsp": config.Rtsp = String(p, "rtsp", errors) ?? config.Rtsp; break;
                    case "dataDir": config.DataDir = String(p, "dataDir", errors) ?? config.DataDir; break;
                    case "tls": config.Tls = ReadTls(p.Value, errors); break;
                    case "devices": config.Devices = ReadArray(p.Value, "devices", errors, ReadDevice); break;
                    case "viewers": config.Viewers = ReadArray(p.Value, "viewers", errors, ReadViewer); break;
                    case "rtsps": config.Rtsps = p.Value.ValueKind == JsonValueKind.Null ? null : String(p, "rtsps", errors); break;
                    case "anonymousViewing": config.AnonymousViewing = Bool(p, "anonymousViewing", errors) ?? false; break;
                    case "rtspBasicOverPlaintext": config.RtspBasicOverPlaintext = Bool(p, "rtspBasicOverPlaintext", errors) ?? false; break;
                    case "metrics": config.Metrics = ReadMetrics(p.Value, errors); break;
                    case "limits": config.Limits = ReadLimits(p.Value, errors); break;
                    case "webrtc": config.WebRtc = ReadWebRtc(p.Value, errors); break;
                    case "iceServers": config.IceServers = ReadArray(p.Value, "iceServers", errors, ReadIceServer); break;
                    case "database":
                        if (String(p, "database", errors) is { } db)
                        {
                            if (DatabaseUrl.TryParse(db, out var url, out var dbError)) config.Database = url;
                            else errors.Add($"database: {dbError}");
                        }
                        break;
                    case "publicUrl": config.PublicUrl = p.Value.ValueKind == JsonValueKind.Null ? null : String(p, "publicUrl", errors); break;
                    case "publicRtsp": config.PublicRtsp = p.Value.ValueKind == JsonValueKind.Null ? null : String(p, "publicRtsp", errors); break;
                    case "telemetry": config.Telemetry = p.Value.ValueKind == JsonValueKind.Null ? null : ReadTelemetry(p.Value, errors); break;
                    default: errors.Add($"{p.Name}: unknown key"); break;
                }
            }
            Validate(config, baseDirectory, errors);
            if (errors.Count > 0) return null;
            config.DataDir = Path.GetFullPath(config.DataDir, baseDirectory);
            if (config.Tls is not null)
            {
                config.Tls.Certificate = Path.GetFullPath(config.Tls.Certificate, baseDirectory);
                config.Tls.Key = Path.GetFullPath(config.Tls.Key, baseDirectory);
            }
            return config;
        }
    }

    /// <summary>What a valid config means for who can watch, said at start and by <c>check-config</c>.</summary>
    public static IEnumerable<string> Notes(RelayConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Viewers.Count == 0)
            yield return config.AnonymousViewing
                ? "anonymousViewing is on and there are no viewers: anyone who can reach the relay may watch every camera over RTSP"
                : "there are no viewers, so nobody may watch: add \"viewers\", or set \"anonymousViewing\": true to serve RTSP without credentials";
        if (config.Metrics.Public) yield return "metrics.public is on: /metrics (device and camera names) is readable without logging in";
        if (config.RtspBasicOverPlaintext) yield return "rtspBasicOverPlaintext is on: RTSP Basic passwords cross the network readable on the plaintext port";
    }

    /// <summary>Parses the <c>rtsp</c> listen address (<c>HOST:PORT</c>, IPv6 in brackets; <c>localhost</c> means loopback).</summary>
    public static bool TryParseEndPoint(string text, out IPEndPoint endPoint)
    {
        if (text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase)
            && int.TryParse(text.AsSpan("localhost:".Length), out var port) && port is >= 0 and <= 65535)
        {
            endPoint = new IPEndPoint(IPAddress.Loopback, port);
            return true;
        }
        if (IPEndPoint.TryParse(text, out var ep) && text.Contains(':', StringComparison.Ordinal) && !text.EndsWith(']'))
        {
            endPoint = ep;
            return true;
        }
        endPoint = null!;
        return false;
    }

    /// <summary>True for <c>HOST:PORT</c> with a DNS name or an IP address (IPv6 in brackets) and a port 1-65535.</summary>
    public static bool IsHostPort(string text)
    {
        if (string.IsNullOrEmpty(text) || text.Length > 260) return false;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535) return false;
        var host = text[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) return IPAddress.TryParse(host[1..^1], out var v6) && v6.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6;
        return Uri.CheckHostName(host) is UriHostNameType.Dns or UriHostNameType.IPv4;
    }

    private static void Validate(RelayConfig c, string baseDir, List<string> errors)
    {
        if (!Uri.TryCreate(c.Http, UriKind.Absolute, out var http) || (http.Scheme != "http" && http.Scheme != "https"))
            errors.Add($"http: \"{c.Http}\" is not an http:// or https:// URL");
        else if (http.Scheme == "https" && c.Tls is null)
            errors.Add("http: https:// needs \"tls\" with a certificate and key");
        if (!TryParseEndPoint(c.Rtsp, out _))
            errors.Add($"rtsp: \"{c.Rtsp}\" is not HOST:PORT (for example 127.0.0.1:8554)");
        if (string.IsNullOrWhiteSpace(c.DataDir))
            errors.Add("dataDir: must not be empty");
        if (c.Tls is { } tls) ValidateTls(tls, baseDir, errors);
        if (c.Rtsps is not null)
        {
            if (!TryParseEndPoint(c.Rtsps, out _))
                errors.Add($"rtsps: \"{c.Rtsps}\" is not HOST:PORT (for example 0.0.0.0:8322)");
            else if (c.Tls is null)
                errors.Add("rtsps: RTSP over TLS needs \"tls\" with a certificate and key");
        }
        if (c.PublicUrl is not null && (!Uri.TryCreate(c.PublicUrl, UriKind.Absolute, out var pub) || (pub.Scheme != "http" && pub.Scheme != "https")
                || pub.Host.Length == 0 || pub.AbsolutePath != "/" || pub.Query.Length > 0 || pub.UserInfo.Length > 0))
            errors.Add($"publicUrl: \"{c.PublicUrl}\" must be http(s)://HOST[:PORT] with no path, query or credentials");
        if (c.PublicRtsp is not null && !IsHostPort(c.PublicRtsp))
            errors.Add($"publicRtsp: \"{c.PublicRtsp}\" must be HOST:PORT (a name or address viewers can reach, for example relay1.example.com:8554)");
        if (c.AnonymousViewing && c.Viewers.Count > 0)
            errors.Add("anonymousViewing: true only applies to a relay without viewers; remove it or the viewers");

        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < c.Devices.Count; i++)
        {
            var d = c.Devices[i];
            if (!IsValidDeviceId(d.Id))
                errors.Add($"devices[{i}].id: \"{d.Id}\" must be 1-64 letters, digits, '-' or '_'");
            else if (!ids.Add(d.Id))
                errors.Add($"devices[{i}].id: \"{d.Id}\" is listed twice");
            if (d.Token.Length < 16)
                errors.Add($"devices[{i}].token: must be at least 16 characters");
        }
        var users = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < c.Viewers.Count; i++)
        {
            var v = c.Viewers[i];
            if (v.User.Length == 0 || v.User.Contains(':', StringComparison.Ordinal) || v.User.Any(char.IsControl))
                errors.Add($"viewers[{i}].user: must be non-empty, without ':' or control characters");
            else if (!users.Add(v.User))
                errors.Add($"viewers[{i}].user: \"{v.User}\" is listed twice");
            if (v.Password.Length == 0)
                errors.Add($"viewers[{i}].password: must not be empty");
        }
    }

    private static void ValidateTls(TlsConfig tls, string baseDir, List<string> errors)
    {
        var cert = Path.GetFullPath(tls.Certificate, baseDir);
        var key = Path.GetFullPath(tls.Key, baseDir);
        var ok = true;
        if (!File.Exists(cert)) { errors.Add($"tls.certificate: file not found: {cert}"); ok = false; }
        if (!File.Exists(key)) { errors.Add($"tls.key: file not found: {key}"); ok = false; }
        if (!ok) return;
        try
        {
            using var loaded = X509Certificate2.CreateFromPemFile(cert, key);
            if (!loaded.HasPrivateKey) errors.Add("tls.key: the key does not match the certificate");
        }
        catch (Exception e) when (e is System.Security.Cryptography.CryptographicException or ArgumentException or IOException)
        {
            errors.Add($"tls: cannot load the PEM certificate and key: {e.Message}");
        }
    }

    /// <summary>Device ids appear in URLs and RTSP paths: keep them to a safe alphabet.</summary>
    public static bool IsValidDeviceId(string id) => DeviceIdPattern().IsMatch(id);

    [GeneratedRegex("^[A-Za-z0-9_-]{1,64}$")]
    private static partial Regex DeviceIdPattern();

    private static MetricsConfig ReadMetrics(JsonElement e, List<string> errors)
    {
        var m = new MetricsConfig();
        if (!ExpectObject(e, "metrics", errors)) return m;
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "public": m.Public = Bool(p, "metrics.public", errors) ?? false; break;
                default: errors.Add($"metrics.{p.Name}: unknown key"); break;
            }
        }
        return m;
    }

    private static LimitsConfig ReadLimits(JsonElement e, List<string> errors)
    {
        var l = new LimitsConfig();
        if (!ExpectObject(e, "limits", errors)) return l;
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "rtspConnections": l.RtspConnections = Count(p, "limits.rtspConnections", 1, 100_000, errors) ?? l.RtspConnections; break;
                case "rtspConnectionsPerAddress": l.RtspConnectionsPerAddress = Count(p, "limits.rtspConnectionsPerAddress", 1, 100_000, errors) ?? l.RtspConnectionsPerAddress; break;
                case "httpConnectionsPerAddress": l.HttpConnectionsPerAddress = Count(p, "limits.httpConnectionsPerAddress", 0, 100_000, errors) ?? l.HttpConnectionsPerAddress; break;
                case "camerasPerDevice": l.CamerasPerDevice = Count(p, "limits.camerasPerDevice", 1, 10_000, errors) ?? l.CamerasPerDevice; break;
                case "viewers": l.Viewers = Count(p, "limits.viewers", 1, 100_000, errors) ?? l.Viewers; break;
                case "viewersPerUser": l.ViewersPerUser = Count(p, "limits.viewersPerUser", 1, 100_000, errors) ?? l.ViewersPerUser; break;
                case "gopCacheMemory": l.GopCacheMemory = Bytes(p, "limits.gopCacheMemory", errors) ?? l.GopCacheMemory; break;
                default: errors.Add($"limits.{p.Name}: unknown key"); break;
            }
        }
        if (l.RtspConnectionsPerAddress > l.RtspConnections)
            errors.Add($"limits.rtspConnectionsPerAddress: {l.RtspConnectionsPerAddress} is more than limits.rtspConnections ({l.RtspConnections})");
        return l;
    }

    private static TelemetryConfig? ReadTelemetry(JsonElement e, List<string> errors)
    {
        if (!ExpectObject(e, "telemetry", errors)) return null;
        var t = new TelemetryConfig();
        var hasMqtt = false;
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "mqtt": t.Mqtt = String(p, "telemetry.mqtt", errors) ?? ""; hasMqtt = true; break;
                case "username": t.Username = String(p, "telemetry.username", errors); break;
                case "password": t.Password = String(p, "telemetry.password", errors); break;
                case "topicPrefix": t.TopicPrefix = String(p, "telemetry.topicPrefix", errors) ?? t.TopicPrefix; break;
                case "clientId": t.ClientId = String(p, "telemetry.clientId", errors); break;
                case "sharedGroup": t.SharedGroup = String(p, "telemetry.sharedGroup", errors); break;
                case "retention": ReadRetention(p.Value, t, errors); break;
                case "alerts": t.Alerts = ReadArray(p.Value, "telemetry.alerts", errors, ReadAlert); break;
                default: errors.Add($"telemetry.{p.Name}: unknown key"); break;
            }
        }
        if (!hasMqtt) errors.Add("telemetry.mqtt: required (the broker the devices publish to, e.g. ws://127.0.0.1:9001/mqtt)");
        else if (!Uri.TryCreate(t.Mqtt, UriKind.Absolute, out var mqtt) || mqtt.Scheme is not ("ws" or "wss" or "mqtt" or "mqtts") || mqtt.Host.Length == 0)
            errors.Add($"telemetry.mqtt: \"{t.Mqtt}\" is not a ws://, wss://, mqtt:// or mqtts:// URL");
        else if (mqtt.UserInfo.Length > 0)
            errors.Add("telemetry.mqtt: put credentials in telemetry.username and telemetry.password, not in the URL");
        if (t.TopicPrefix.Length == 0 || t.TopicPrefix.IndexOfAny(['+', '#', '\0']) >= 0 || t.TopicPrefix.EndsWith('/'))
            errors.Add($"telemetry.topicPrefix: \"{t.TopicPrefix}\" must be a non-empty topic level(s) without wildcards or a trailing '/'");
        if (t.ClientId is { } id && (id.Length is 0 or > 64 || id.Any(char.IsControl)))
            errors.Add("telemetry.clientId: must be 1-64 characters without control characters");
        // MQTT 5 §4.8.2: a ShareName is one topic level without wildcards.
        if (t.SharedGroup is { } group && (group.Length is 0 or > 64 || group.IndexOfAny(['/', '+', '#']) >= 0 || group.Any(char.IsControl)))
            errors.Add($"telemetry.sharedGroup: \"{group}\" must be 1-64 characters without '/', '+', '#' or control characters");
        if (t.Password is not null && t.Username is null)
            errors.Add("telemetry.password: needs telemetry.username");
        return t;
    }

    private static void ReadRetention(JsonElement e, TelemetryConfig t, List<string> errors)
    {
        if (!ExpectObject(e, "telemetry.retention", errors)) return;
        foreach (var p in e.EnumerateObject())
        {
            var path = $"telemetry.retention.{p.Name}";
            switch (p.Name)
            {
                case "raw": t.RawRetention = RetentionSpan(p, path, allowForever: false, errors) ?? t.RawRetention; break;
                case "minute": t.MinuteRetention = RetentionSpan(p, path, allowForever: false, errors) ?? t.MinuteRetention; break;
                case "hour": t.HourRetention = RetentionSpan(p, path, allowForever: true, errors); break;
                default: errors.Add($"{path}: unknown key (raw, minute, hour)"); break;
            }
        }
        if (t.MinuteRetention < t.RawRetention)
            errors.Add("telemetry.retention.minute: must be at least as long as telemetry.retention.raw");
        if (t.HourRetention is { } hour && hour < t.MinuteRetention)
            errors.Add("telemetry.retention.hour: must be at least as long as telemetry.retention.minute");
    }

    // Retention: "7d", "36h", "90d"; "forever" (or null) where allowed. At least an hour.
    private static TimeSpan? RetentionSpan(JsonProperty p, string path, bool allowForever, List<string> errors)
    {
        if (allowForever && (p.Value.ValueKind == JsonValueKind.Null || (p.Value.ValueKind == JsonValueKind.String && p.Value.GetString() == "forever"))) return null;
        var text = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : "";
        TimeSpan? value = null;
        if (text.EndsWith('d') && int.TryParse(text.AsSpan(0, text.Length - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var days) && days is > 0 and <= 36_500)
            value = TimeSpan.FromDays(days);
        else if (Pinhole.EdgeHost.Configuration.Duration.TryParse(text, out var span, out _))
            value = span;
        if (value is { } v && v >= TimeSpan.FromHours(1)) return v;
        errors.Add($"{path}: must be a duration of at least 1h such as \"7d\", \"36h\"{(allowForever ? " or \"forever\"" : "")}");
        return null;
    }

    private static AlertRuleConfig? ReadAlert(JsonElement e, string path, List<string> errors)
    {
        if (!ExpectObject(e, path, errors)) return null;
        var a = new AlertRuleConfig();
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "device": a.Device = String(p, $"{path}.device", errors) ?? a.Device; break;
                case "sensor": a.Sensor = String(p, $"{path}.sensor", errors) ?? ""; break;
                case "above": a.Above = Number(p, $"{path}.above", errors); break;
                case "below": a.Below = Number(p, $"{path}.below", errors); break;
                case "for":
                    if (String(p, $"{path}.for", errors) is { } text)
                    {
                        if (Pinhole.EdgeHost.Configuration.Duration.TryParse(text, out var span, out var error)) a.For = span;
                        else errors.Add($"{path}.for: {error}");
                    }
                    break;
                default: errors.Add($"{path}.{p.Name}: unknown key (device, sensor, above, below, for)"); break;
            }
        }
        if (a.Device != "*" && !IsValidDeviceId(a.Device)) errors.Add($"{path}.device: \"{a.Device}\" must be a device id or \"*\"");
        if (a.Sensor.Length == 0 || a.Sensor.IndexOfAny(['/', '+', '#']) >= 0) errors.Add($"{path}.sensor: required, a sensor name without '/', '+' or '#'");
        if (a.Above is null && a.Below is null) errors.Add($"{path}: needs \"above\" or \"below\" (or both)");
        if (a.Above is { } above && a.Below is { } below && below >= above)
            errors.Add($"{path}: with both, \"below\" ({below}) must be less than \"above\" ({above}): the alert is raised outside that band");
        return a;
    }

    private static double? Number(JsonProperty p, string path, List<string> errors)
    {
        if (p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetDouble(out var d) && double.IsFinite(d)) return d;
        errors.Add($"{path}: must be a number");
        return null;
    }

    private static int? Count(JsonProperty p, string path, int min, int max, List<string> errors)
    {
        if (p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out var n) && n >= min && n <= max) return n;
        errors.Add($"{path}: must be a whole number from {min} to {max}");
        return null;
    }

    // A byte count: a number, or a string such as "256MB", "1GiB", "512k".
    private static long? Bytes(JsonProperty p, string path, List<string> errors)
    {
        long? value = null;
        if (p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt64(out var n)) value = n;
        else if (p.Value.ValueKind == JsonValueKind.String && ByteSizePattern().Match(p.Value.GetString()!) is { Success: true } m
                 && long.TryParse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture, out var number))
        {
            var unit = m.Groups[2].Value.ToUpperInvariant();
            long scale = unit.Length == 0 || unit == "B" ? 1 : unit[0] switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, _ => 0 };
            if (scale > 0 && number <= long.MaxValue / scale) value = number * scale;
        }
        if (value is >= 1024 * 1024 and <= 64L << 30) return value;
        errors.Add($"{path}: must be a size from 1MB to 64GB (bytes, or a string such as \"256MB\")");
        return null;
    }

    [GeneratedRegex(@"^\s*(\d{1,12})\s*([kKmMgG]i?[bB]?|[bB])?\s*$")]
    private static partial Regex ByteSizePattern();

    private static bool? Bool(JsonProperty p, string path, List<string> errors)
    {
        if (p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False) return p.Value.GetBoolean();
        errors.Add($"{path}: must be true or false");
        return null;
    }

    private static TlsConfig? ReadTls(JsonElement e, List<string> errors)
    {
        if (e.ValueKind == JsonValueKind.Null) return null;
        if (!ExpectObject(e, "tls", errors)) return null;
        var tls = new TlsConfig();
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "certificate": tls.Certificate = String(p, "tls.certificate", errors) ?? ""; break;
                case "key": tls.Key = String(p, "tls.key", errors) ?? ""; break;
                default: errors.Add($"tls.{p.Name}: unknown key"); break;
            }
        }
        if (tls.Certificate.Length == 0) errors.Add("tls.certificate: required");
        if (tls.Key.Length == 0) errors.Add("tls.key: required");
        return tls;
    }

    private static WebRtcConfig? ReadWebRtc(JsonElement e, List<string> errors)
    {
        if (e.ValueKind == JsonValueKind.Null) return null;
        if (!ExpectObject(e, "webrtc", errors)) return null;
        var w = new WebRtcConfig();
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "udp": w.Udp = String(p, "webrtc.udp", errors) ?? w.Udp; break;
                case "tcp": w.Tcp = Bool(p, "webrtc.tcp", errors) ?? w.Tcp; break;
                case "publicAddresses":
                    w.PublicAddresses = [];
                    if (p.Value.ValueKind != JsonValueKind.Array) { errors.Add("webrtc.publicAddresses: must be an array of IP addresses"); break; }
                    var i = 0;
                    foreach (var a in p.Value.EnumerateArray())
                    {
                        if (a.ValueKind == JsonValueKind.String && IPAddress.TryParse(a.GetString(), out _)) w.PublicAddresses.Add(a.GetString()!);
                        else errors.Add($"webrtc.publicAddresses[{i}]: must be an IP address (browsers are sent it as a host candidate)");
                        i++;
                    }
                    break;
                default: errors.Add($"webrtc.{p.Name}: unknown key"); break;
            }
        }
        if (!TryParseEndPoint(w.Udp, out _))
            errors.Add($"webrtc.udp: \"{w.Udp}\" is not HOST:PORT (for example 0.0.0.0:8443)");
        return w;
    }

    private static IceServerConfig? ReadIceServer(JsonElement e, string path, List<string> errors)
    {
        if (!ExpectObject(e, path, errors)) return null;
        var s = new IceServerConfig();
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "urls":
                    if (p.Value.ValueKind == JsonValueKind.String) s.Urls = [p.Value.GetString()!];
                    else if (p.Value.ValueKind == JsonValueKind.Array && p.Value.EnumerateArray().All(u => u.ValueKind == JsonValueKind.String))
                        s.Urls = p.Value.EnumerateArray().Select(u => u.GetString()!).ToList();
                    else errors.Add($"{path}.urls: must be a string or an array of strings");
                    break;
                case "username": s.Username = String(p, $"{path}.username", errors); break;
                case "credential": s.Credential = String(p, $"{path}.credential", errors); break;
                case "secret": s.Secret = String(p, $"{path}.secret", errors); break;
                case "ttl": s.Ttl = Count(p, $"{path}.ttl", 60, 7 * 24 * 3600, errors) ?? s.Ttl; break;
                default: errors.Add($"{path}.{p.Name}: unknown key"); break;
            }
        }
        if (s.Urls.Count == 0) errors.Add($"{path}.urls: required (stun:HOST:PORT or turn:HOST:PORT)");
        foreach (var u in s.Urls)
            if (!(u.StartsWith("stun:", StringComparison.Ordinal) || u.StartsWith("stuns:", StringComparison.Ordinal) || u.StartsWith("turn:", StringComparison.Ordinal) || u.StartsWith("turns:", StringComparison.Ordinal)))
                errors.Add($"{path}.urls: \"{u}\" must start with stun:, stuns:, turn: or turns:");
        if (s.Secret is not null && (s.Username is not null || s.Credential is not null))
            errors.Add($"{path}: give either \"secret\" (credentials minted per viewer) or \"username\" and \"credential\", not both");
        return s;
    }

    private static DeviceConfig? ReadDevice(JsonElement e, string path, List<string> errors)
    {
        if (!ExpectObject(e, path, errors)) return null;
        var d = new DeviceConfig();
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "id": d.Id = String(p, $"{path}.id", errors) ?? ""; break;
                case "token": d.Token = String(p, $"{path}.token", errors) ?? ""; break;
                default: errors.Add($"{path}.{p.Name}: unknown key"); break;
            }
        }
        return d;
    }

    private static ViewerConfig? ReadViewer(JsonElement e, string path, List<string> errors)
    {
        if (!ExpectObject(e, path, errors)) return null;
        var v = new ViewerConfig();
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "user": v.User = String(p, $"{path}.user", errors) ?? ""; break;
                case "password": v.Password = String(p, $"{path}.password", errors) ?? ""; break;
                case "role":
                    v.Role = String(p, $"{path}.role", errors) ?? ViewerRoles.Viewer;
                    if (v.Role is not (ViewerRoles.Viewer or ViewerRoles.Admin))
                        errors.Add($"{path}.role: must be \"{ViewerRoles.Viewer}\" or \"{ViewerRoles.Admin}\" (got \"{v.Role}\")");
                    break;
                case "publish":
                    if (p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False) v.Publish = p.Value.GetBoolean();
                    else errors.Add($"{path}.publish: must be true or false");
                    break;
                default: errors.Add($"{path}.{p.Name}: unknown key"); break;
            }
        }
        return v;
    }

    private static List<T> ReadArray<T>(JsonElement e, string path, List<string> errors, Func<JsonElement, string, List<string>, T?> read)
        where T : class
    {
        var list = new List<T>();
        if (e.ValueKind != JsonValueKind.Array)
        {
            errors.Add($"{path}: must be an array");
            return list;
        }
        var i = 0;
        foreach (var item in e.EnumerateArray())
        {
            if (read(item, $"{path}[{i}]", errors) is { } value) list.Add(value);
            i++;
        }
        return list;
    }

    private static bool ExpectObject(JsonElement e, string path, List<string> errors)
    {
        if (e.ValueKind == JsonValueKind.Object) return true;
        errors.Add($"{path}: must be an object");
        return false;
    }

    private static string? String(JsonProperty p, string path, List<string> errors)
    {
        if (p.Value.ValueKind == JsonValueKind.String) return p.Value.GetString();
        errors.Add($"{path}: must be a string");
        return null;
    }
}
