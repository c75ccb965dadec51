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
