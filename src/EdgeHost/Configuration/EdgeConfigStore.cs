using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Supervision;

namespace Pinhole.EdgeHost.Configuration;

/// <summary>The outcome of a save: the problems that refused it, or what the apply restarted.</summary>
public sealed record ConfigSaveResult(IReadOnlyList<ConfigProblem> Problems, ConfigApplyResult? Applied)
{
    /// <summary>True when the new config is on disk and running.</summary>
    public bool Saved => Problems.Count == 0;
}

/// <summary>
/// The running config and its file. A save validates with the same loader as <c>check-config</c>,
/// writes atomically (temp file, fsync, rename; the previous file kept as <c>edge.json.prev</c>) and
/// applies the result to the supervisor so only changed pipelines restart. A refused save changes nothing.
/// </summary>
public sealed partial class EdgeConfigStore
{
    /// <summary>The sections the local page may edit; everything else (deviceId, token, web, dataDir) stays as in the file.</summary>
    public static readonly string[] EditableSections = ["relays", "cameras", "sensors", "mqtt"];

    private static readonly JsonSerializerOptions WriteOptions = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly PipelineSupervisor _supervisor;
    private readonly ILogger<EdgeConfigStore> _logger;
    private readonly SemaphoreSlim _saveLock = new(1, 1);

    public EdgeConfigStore(string path, EdgeConfig config, PipelineSupervisor supervisor, ILogger<EdgeConfigStore> logger)
    {
        FilePath = Path.GetFullPath(path);
        Current = config;
        _supervisor = supervisor;
        _logger = logger;
    }

    /// <summary>The config file.</summary>
    public string FilePath { get; }

    /// <summary>The config the pipelines run with.</summary>
    public EdgeConfig Current { get; private set; }

    /// <summary>What <see cref="ReadEditableSections"/> shows instead of a camera's password; sent back, it keeps the stored one.</summary>
    public const string PasswordPlaceholder = "********";

    /// <summary>The editable sections of the file as JSON. Secrets stay on the device: the MQTT password is left out
    /// and camera passwords in <c>rtsp://user:password@…</c> read as <see cref="PasswordPlaceholder"/> (see <see cref="SaveSectionsAsync"/>).</summary>
    public JsonObject ReadEditableSections()
    {
        var file = ReadFileObject(out _) ?? [];
        var result = new JsonObject();
        foreach (var key in EditableSections)
            result[key] = file[key]?.DeepClone();
        if (result["mqtt"] is JsonObject mqtt && mqtt.Remove("password"))
            mqtt["passwordSet"] = true;
        if (result["cameras"] is JsonArray cameras)
        {
            foreach (var camera in cameras.OfType<JsonObject>())
                if (camera["source"] is JsonValue v && v.TryGetValue<string>(out var source) && CameraUrlPassword.Redact(source) is { } redacted)
                    camera["source"] = redacted;
        }
        return result;
    }

    /// <summary>The sections a relay manages, exactly as in the file (secrets included): what a guarded remote change would restore.</summary>
    public JsonObject ReadManagedSections()
    {
        var file = ReadFileObject(out _) ?? [];
        var result = new JsonObject();
        foreach (var key in ManagedConfig.Keys)
            result[key] = file[key]?.DeepClone();
        return result;
    }

    /// <summary>
    /// A save from the local page: <see cref="SaveSectionsAsync"/> after the page's trust rules. The page is
    /// reachable by anyone on the LAN who has its password, which must not make them the device's owner: a
    /// relay it adds gets the device token, so it must be <c>wss://</c> (or one edge.json already trusts), and an
    /// <c>exec:</c> camera runs a command, so the page may add or change one only with <c>web.allowExec</c>.
    /// </summary>
    public async Task<ConfigSaveResult> SavePageSectionsAsync(JsonObject sections)
    {
        ArgumentNullException.ThrowIfNull(sections);
        var file = ReadFileObject(out var error);
        if (file is null) return new ConfigSaveResult([new ConfigProblem("", error!)], null);
        var problems = new List<ConfigProblem>();
        if (sections["relays"] is JsonArray relays)
        {
            var trusted = (file["relays"] as JsonArray)?.Select(r => r?.ToString()).ToHashSet(StringComparer.Ordinal) ?? [];
            for (var i = 0; i < relays.Count; i++)
            {
                var url = relays[i] is JsonValue rv && rv.TryGetValue<string>(out var u) ? u : null;
                if (url is null || url.StartsWith("wss://", StringComparison.OrdinalIgnoreCase) || trusted.Contains(url)) continue;
                problems.Add(new ConfigProblem($"relays[{i}]", "from the page a new relay must be wss:// (the device sends it its token); add ws:// relays in edge.json"));
            }
        }
        if (sections["cameras"] is JsonArray cameras && !Current.Web.AllowExec)
        {
            var stored = (file["cameras"] as JsonArray)?.OfType<JsonObject>()
                .Select(c => (Name: c["name"]?.ToString(), Source: c["source"]?.ToString())).ToHashSet() ?? [];
            for (var i = 0; i < cameras.Count; i++)
            {
                if (cameras[i] is not JsonObject c || c["source"] is not JsonValue sv || !sv.TryGetValue<string>(out var source)) continue;
                if (!source.TrimStart().StartsWith("exec:", StringComparison.Ordinal)) continue;
                // An exec: camera edge.json already has may stay as it is.
                if (stored.Contains((c["name"]?.ToString(), source))) continue;
                problems.Add(new ConfigProblem($"cameras[{i}].source", "exec: sources run a command on the device: the page may add or change them only with \"web\": { \"allowExec\": true } in edge.json"));
            }
        }
        if (problems.Count > 0)
        {
            LogRefused(_logger, problems.Count, problems[0].ToString());
            return new ConfigSaveResult(problems, null);
        }
        return await SaveSectionsAsync(sections);
    }

    /// <summary>
    /// Replaces the editable sections with <paramref name="sections"/> (keys not given are kept; a
    /// null value removes an optional section), validates, saves and applies. An MQTT object without
    /// <c>password</c> keeps the stored one, so the page never has to hold it.
    /// </summary>
    public async Task<ConfigSaveResult> SaveSectionsAsync(JsonObject sections)
    {
        await _saveLock.WaitAsync();
        try
        {
            var file = ReadFileObject(out var error);
            if (file is null)
                return new ConfigSaveResult([new ConfigProblem("", error!)], null);

            foreach (var (key, value) in sections)
            {
                if (key == "mqtt" && value is JsonObject newMqtt)
                {
                    var keep = newMqtt.DeepClone().AsObject();
                    keep.Remove("passwordSet");
                    if (!keep.ContainsKey("password") && file["mqtt"] is JsonObject oldMqtt && oldMqtt["password"] is { } oldPassword)
                        keep["password"] = oldPassword.DeepClone();
                    file[key] = keep;
                }
                else if (key == "cameras" && value is JsonArray newCameras)
                {
                    // A password the page shows as the placeholder and sends back unchanged stays what it was.
                    var keep = newCameras.DeepClone().AsArray();
                    var old = (file["cameras"] as JsonArray)?.OfType<JsonObject>().ToList() ?? [];
                    for (var i = 0; i < keep.Count; i++)
                    {
                        if (keep[i] is not JsonObject c || c["source"] is not JsonValue sv || !sv.TryGetValue<string>(out var source)
                            || !CameraUrlPassword.HasPlaceholder(source)) continue;
                        var name = c["name"]?.ToString();
                        var match = old.Select(o => o["source"]?.ToString()).FirstOrDefault(o => o is not null && CameraUrlPassword.Redact(o) == source
                            && old.Any(x => x["name"]?.ToString() == name && x["source"]?.ToString() == o))
                            ?? old.Select(o => o["source"]?.ToString()).FirstOrDefault(o => o is not null && CameraUrlPassword.Redact(o) == source);
                        if (match is null)
                            return new ConfigSaveResult([new ConfigProblem($"cameras[{i}].source", $"{PasswordPlaceholder} stands for a stored password, and no stored camera has this address and user; type the password")], null);
                        c["source"] = match;
                    }
                    file[key] = keep;
                }
                else if (!EditableSections.Contains(key))
                {
                    return new ConfigSaveResult([new ConfigProblem(key, "cannot be changed from the page (edit edge.json)")], null);
                }
                else if (value is null)
                {
                    file.Remove(key);
                }
                else
                {
                    file[key] = value.DeepClone();
                }
            }
            return await SaveTextAsync(file.ToJsonString(WriteOptions) + "\n");
        }
        finally
        {
            _saveLock.Release();
        }
    }

    /// <summary>
    /// Re-reads the file (after someone edited it by hand; <c>systemctl reload pinhole-edge</c> sends
    /// SIGHUP) and applies it. An invalid file is refused with its problems and the running config stays.
    /// Keys outside the pipelines (web.*) take effect at the next restart.
    /// </summary>
    public async Task<ConfigSaveResult> ReloadAsync()
    {
        await _saveLock.WaitAsync();
        try
        {
            var result = EdgeConfigLoader.LoadFile(FilePath);
            if (!result.IsValid)
            {
                foreach (var problem in result.Problems)
                    LogReloadProblem(_logger, FilePath, problem.ToString());
                return new ConfigSaveResult(result.Problems, null);
            }
            var applied = await _supervisor.ApplyAsync(result.Config!);
            Current = result.Config!;
            LogReloaded(_logger, FilePath);
            return new ConfigSaveResult([], applied);
        }
        finally
        {
            _saveLock.Release();
        }
    }

    private async Task<ConfigSaveResult> SaveTextAsync(string text)
    {
        var result = EdgeConfigLoader.Parse(text, Path.GetDirectoryName(FilePath));
        if (!result.IsValid)
        {
            LogRefused(_logger, result.Problems.Count, result.Problems[0].ToString());
            return new ConfigSaveResult(result.Problems, null);
        }
        var previousText = File.ReadAllText(FilePath);
        try
        {
            WriteAtomically(FilePath, text);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogWriteFailed(_logger, FilePath, e.Message);
            return new ConfigSaveResult([new ConfigProblem("", $"could not write {FilePath}: {e.Message}")], null);
        }
        ConfigApplyResult applied;
        try
        {
            applied = await _supervisor.ApplyAsync(result.Config!);
        }
        catch (Exception e)
        {
            // A pipeline factory refused the config (a bug, since it validated): put the old file back
            // so the file and the running pipelines agree.
            LogApplyFailed(_logger, e);
            WriteAtomically(FilePath, previousText);
            return new ConfigSaveResult([new ConfigProblem("", $"could not be applied, nothing changed: {e.Message}")], null);
        }
        Current = result.Config!;
        LogSaved(_logger, FilePath);
        return new ConfigSaveResult([], applied);
    }

    private JsonObject? ReadFileObject(out string? error)
    {
        error = null;
        try
        {
            if (JsonNode.Parse(File.ReadAllText(FilePath), documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip }) is JsonObject o)
                return o;
            error = $"{FilePath} does not hold a JSON object; fix it by hand";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            error = $"cannot read {FilePath}: {e.Message}";
        }
        return null;
    }

    /// <summary>
    /// Write-to-temp, fsync, keep the old file as <c>.prev</c>, rename over, fsync the directory: after a
    /// power cut the file is either the old or the new version, never a torn mix.
    /// </summary>
    /// <remarks>The new file keeps the old one's permissions and (when the process may set it) owner: edge.json holds
    /// the device token and passwords, and a 0600 file must not come back 0644 from a save.</remarks>
    public static void WriteAtomically(string path, string text)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None };
            // Created with the old file's mode (or owner-only when there is none), so it is never readable by others, not even briefly.
            if (!OperatingSystem.IsWindows())
                options.UnixCreateMode = File.Exists(path) ? File.GetUnixFileMode(path) : UnixFileMode.UserRead | UnixFileMode.UserWrite;
            if (File.Exists(temp)) File.Delete(temp);
            using (var stream = new FileStream(temp, options))
            {
                stream.Write(Encoding.UTF8.GetBytes(text));
                stream.Flush(flushToDisk: true);
            }
            if (!OperatingSystem.IsWindows() && File.Exists(path))
            {
                // The umask may have narrowed the create mode; set it exactly. Then the owner, when we are allowed to.
                File.SetUnixFileMode(temp, File.GetUnixFileMode(path));
                if (OperatingSystem.IsLinux() && Native.TryGetOwner(path, out var uid, out var gid)) _ = Native.chown(temp, uid, gid);
            }
            if (File.Exists(path))
            {
                // A hard link keeps the old inode as .prev without a window where edge.json is missing.
                var prev = path + ".prev";
                File.Delete(prev);
                if (!TryLink(path, prev)) File.Copy(path, prev, overwrite: true);
            }
            File.Move(temp, path, overwrite: true);
            FsyncDirectory(directory);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    private static bool TryLink(string existing, string link) =>
        OperatingSystem.IsLinux() && Native.link(existing, link) == 0;

    private static void FsyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux()) return;
        var fd = Native.open(directory, 0 /* O_RDONLY */);
        if (fd < 0) return;
        _ = Native.fsync(fd);
        _ = Native.close(fd);
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true)]
        internal static extern int link([MarshalAs(UnmanagedType.LPUTF8Str)] string oldpath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newpath);

        [DllImport("libc", SetLastError = true)]
        internal static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

        [DllImport("libc", SetLastError = true)]
        internal static extern int fsync(int fd);

        [DllImport("libc", SetLastError = true)]
        internal static extern int close(int fd);

        [DllImport("libc", SetLastError = true)]
        internal static extern int chown([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint owner, uint group);

        [DllImport("libc", SetLastError = true)]
        private static extern int statx(int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, uint mask, [Out] byte[] buffer);

        // struct statx has the same layout on every architecture: stx_uid at byte 20, stx_gid at 24 (statx(2)).
        internal static bool TryGetOwner(string path, out uint uid, out uint gid)
        {
            const int AtFdCwd = -100;
            const uint StatxUid = 0x8, StatxGid = 0x10;
            var buffer = new byte[256];
            uid = gid = 0;
            try
            {
                if (statx(AtFdCwd, path, 0, StatxUid | StatxGid, buffer) != 0) return false;
            }
            catch (EntryPointNotFoundException)
            {
                return false;
            }
            uid = BitConverter.ToUInt32(buffer, 20);
            gid = BitConverter.ToUInt32(buffer, 24);
            return true;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "config refused ({Count} problems), first: {First}")]
    private static partial void LogRefused(ILogger logger, int count, string first);

    [LoggerMessage(Level = LogLevel.Error, Message = "could not write {Path}: {Reason}")]
    private static partial void LogWriteFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "a valid config could not be applied; the previous file is restored")]
    private static partial void LogApplyFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "reload of {Path} refused, keeping the running config: {Problem}")]
    private static partial void LogReloadProblem(ILogger logger, string path, string problem);

    [LoggerMessage(Level = LogLevel.Information, Message = "config reloaded from {Path} and applied")]
    private static partial void LogReloaded(ILogger logger, string path);

    [LoggerMessage(Level = LogLevel.Information, Message = "config saved to {Path} and applied")]
    private static partial void LogSaved(ILogger logger, string path);
}
