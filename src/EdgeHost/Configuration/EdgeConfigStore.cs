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

    /// <summary>The editable sections of the file as JSON (secrets: the MQTT password is left out, see <see cref="SaveSectionsAsync"/>).</summary>
    public JsonObject ReadEditableSections()
    {
        var file = ReadFileObject(out _) ?? [];
        var result = new JsonObject();
        foreach (var key in EditableSections)
            result[key] = file[key]?.DeepClone();
        if (result["mqtt"] is JsonObject mqtt && mqtt.Remove("password"))
            mqtt["passwordSet"] = true;
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
    public static void WriteAtomically(string path, string text)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Environment.ProcessId}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                stream.Write(Encoding.UTF8.GetBytes(text));
                stream.Flush(flushToDisk: true);
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
