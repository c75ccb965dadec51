using System.Security.Cryptography;
using System.Threading.Channels;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Uplink;
using Pinhole.Transport.Updates;
using Pinhole.Transport.Uplink;

namespace Pinhole.EdgeHost.Updates;

/// <summary>
/// The device's side of remote updates (docs/updates.md). It takes an <see cref="UpdateOffer"/> from the
/// uplink's data channel, refuses what it must (wrong architecture, not newer unless forced, a release that
/// was rolled back here before), downloads the bundle in bounded chunks from the last byte it has on disk
/// (a partial file survives disconnects and restarts), asks for the next chunk only while no video waits
/// in the send queue, checks the bundle's SHA-256, signature and every file's hash while unpacking next to
/// the running release, writes <c>ROOT/trial</c>, switches <c>ROOT/current</c> in one rename and exits, so
/// the launcher starts the new release on trial. Progress and outcomes go to the relay as <see cref="UpdateReport"/>s.
/// </summary>
public sealed partial class UpdateAgent : IUplinkDataHandler, IAsyncDisposable
{
    /// <summary>Chunk size asked for.</summary>
    public const int ChunkBytes = 64 * 1024;

    /// <summary>Chunks asked for ahead of the one being written (a small window: the download never floods the link).</summary>
    public const int Window = 4;

    private readonly UpdateConfig _config;
    private readonly InstallRoot _root;
    private readonly UplinkClient? _uplink;
    private readonly IHostApplicationLifetime? _lifetime;
    private readonly TimeProvider _time;
    private readonly ILogger<UpdateAgent> _logger;
    private readonly string _dir;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private volatile Func<UplinkMessage, bool>? _send;
    private Download? _download;

    /// <summary>Creates the agent.</summary>
    public UpdateAgent(EdgeConfig config, TimeProvider time, ILogger<UpdateAgent> logger, UplinkClient? uplink = null, IHostApplicationLifetime? lifetime = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        _config = config.Update ?? throw new ArgumentException("edge.json has no update section", nameof(config));
        _root = new InstallRoot(_config.Root);
        _uplink = uplink;
        _lifetime = lifetime;
        _time = time;
        _logger = logger;
        _dir = Path.Combine(config.DataDir, "updates");
    }

    /// <summary>The architecture bundles must be for (tests may pretend another).</summary>
    public string Architecture { get; init; } = ReleaseBundle.CurrentArchitecture;

    /// <summary>The version this process runs.</summary>
    public string RunningVersion { get; init; } = ReleaseInfo.Version;

    /// <summary>The install layout.</summary>
    public InstallRoot InstallRoot => _root;

    private sealed class Download(UpdateOffer offer, string path)
    {
        public UpdateOffer Offer { get; } = offer;
        public string Path { get; } = path;
        public Channel<UpdateChunk> Chunks { get; } = Channel.CreateBounded<UpdateChunk>(new BoundedChannelOptions(Window * 2) { FullMode = BoundedChannelFullMode.DropWrite });
        public CancellationTokenSource Cancel { get; } = new();
        public Task Task { get; set; } = Task.CompletedTask;
    }

    /// <inheritdoc />
    public void OnConnected(Uri relay, Func<UplinkMessage, bool>? send)
    {
        _send = send;
        if (send is null) return;
        // What runs now, and what became of the last update, every time: the relay may have missed it.
        var trial = _root.ReadTrial();
        Send(trial is not null && trial.Version == RunningVersion
            ? new UpdateReport(RunningVersion, UpdateState.Trial, 0, "")
            : new UpdateReport(RunningVersion, UpdateState.Running, 0, ""));
        if (_root.ReadRollback() is { } rollback)
        {
            if (Send(new UpdateReport(rollback.Version, UpdateState.RolledBack, 0, rollback.Reason)))
            {
                LogRolledBackReported(_logger, rollback.Version, rollback.Reason);
                try { _root.MarkRollbackReported(); } catch (IOException) { }
            }
        }
    }

    /// <inheritdoc />
    public void OnDisconnected()
    {
        _send = null;
        lock (_lock)
        {
            // The partial file stays; the relay's offer on the next connect resumes it.
            _download?.Cancel.Cancel();
            _download = null;
        }
    }

    /// <inheritdoc />
    public void OnMessage(UplinkMessage message)
    {
        switch (message)
        {
            case UpdateOffer offer:
                OnOffer(offer);
                break;
            case UpdateChunk chunk:
                lock (_lock)
                    if (_download is { } d && d.Offer.Version == chunk.Version) d.Chunks.Writer.TryWrite(chunk);
                break;
        }
    }

    private void OnOffer(UpdateOffer offer)
    {
        if (!ReleaseVersion.IsValid(offer.Version) || offer.Sha256.Length != 32)
        {
            Send(new UpdateReport(ReleaseVersion.IsValid(offer.Version) ? offer.Version : "invalid", UpdateState.Refused, 0, "the offer is malformed"));
            return;
        }
        if (offer.Version == RunningVersion)
        {
            Send(new UpdateReport(RunningVersion, _root.ReadTrial()?.Version == RunningVersion ? UpdateState.Trial : UpdateState.Running, 0, ""));
            return;
        }
        var refusal = Refusal(offer);
        if (refusal is not null)
        {
            LogRefused(_logger, offer.Version, refusal);
            Send(new UpdateReport(offer.Version, refusal.StartsWith("rolled back", StringComparison.Ordinal) ? UpdateState.RolledBack : UpdateState.Refused, 0,
                refusal.StartsWith("rolled back", StringComparison.Ordinal) ? refusal["rolled back: ".Length..] : refusal));
            return;
        }
        lock (_lock)
        {
            if (_download is { } running && running.Offer.Version == offer.Version && !running.Task.IsCompleted) return;
            _download?.Cancel.Cancel();
            var d = new Download(offer, Path.Combine(_dir, offer.Version + ".bundle.partial"));
            _download = d;
            d.Task = Task.Run(() => RunAsync(d));
        }
    }

    private string? Refusal(UpdateOffer offer)
    {
        if (!ReleaseBundle.RunsOn(offer.Architecture, Architecture))
            return $"wrong architecture: the release is for {offer.Architecture}, this device is {Architecture}";
        if (!offer.Force && ReleaseVersion.Compare(offer.Version, RunningVersion) <= 0)
            return $"version {offer.Version} is not newer than the committed {RunningVersion} (roll out with --force to go back)";
        if (!offer.Force && (_root.ReadRollback() ?? _root.ReadRollback(reported: true)) is { } rb && rb.Version == offer.Version)
            return $"rolled back: {rb.Reason}";
        if (offer.Size > (ulong)(ReleaseManifest.MaxTotalBytes + ReleaseBundle.MaxManifestBytes + 1024))
            return $"bundle of {offer.Size} bytes is larger than a release may be";
        return null;
    }

    private async Task RunAsync(Download d)
    {
        var ct = CancellationTokenSource.CreateLinkedTokenSource(d.Cancel.Token, _stop.Token).Token;
        try
        {
            if (!await DownloadAsync(d, ct)) return;
            Install(d, ct);
        }
        catch (OperationCanceledException)
        {
            // Disconnected or stopping: the partial file is kept for the next offer.
        }
        catch (ReleaseBundleException e)
        {
            LogRefused(_logger, d.Offer.Version, e.Message);
            TryDelete(d.Path);
            Send(new UpdateReport(d.Offer.Version, UpdateState.Refused, 0, e.Message));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogFailed(_logger, d.Offer.Version, e.Message);
            Send(new UpdateReport(d.Offer.Version, UpdateState.Refused, 0, "install failed: " + e.Message));
        }
    }

    private async Task<bool> DownloadAsync(Download d, CancellationToken ct)
    {
        Directory.CreateDirectory(_dir);
        var size = (long)d.Offer.Size;
        var metaPath = Path.Combine(_dir, d.Offer.Version + ".offer");
        var meta = $"{size} {Convert.ToHexStringLower(d.Offer.Sha256.Span)}";
        // A partial file of another bundle with the same version (re-packed) starts over.
        if (!File.Exists(metaPath) || File.ReadAllText(metaPath) != meta)
        {
            TryDelete(d.Path);
            InstallRoot.WriteAtomically(metaPath, meta);
        }
        // Leftovers of other versions go.
        foreach (var other in Directory.EnumerateFiles(_dir))
            if (!Path.GetFileName(other).StartsWith(d.Offer.Version + ".", StringComparison.Ordinal)) TryDelete(other);

        await using var file = new FileStream(d.Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1, FileOptions.None);
        var offset = file.Length;
        if (offset > size)
        {
            file.SetLength(0);
            offset = 0;
        }
        if (offset > 0) LogResuming(_logger, d.Offer.Version, offset, size);
        else LogDownloading(_logger, d.Offer.Version, size);
        file.Position = offset;
        var requested = offset;
        var lastPercent = -10; // so the first chunk is reported (0 %)
        var started = _time.GetTimestamp();
        var startOffset = offset;
        while (offset < size)
        {
            while (requested < size && requested - offset < (long)ChunkBytes * Window)
            {
                await WaitForIdleMediaAsync(ct);
                var length = (uint)Math.Min(ChunkBytes, size - requested);
                if (!Send(new UpdateRequest(d.Offer.Version, (ulong)requested, length))) throw new OperationCanceledException();
                requested += length;
            }
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            UpdateChunk chunk;
            try
            {
                chunk = await d.Chunks.Reader.ReadAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                // Nothing for 30 s on a live session: ask again from where we are.
                requested = offset;
                continue;
            }
            if ((long)chunk.Offset != offset) continue; // a duplicate or an answer to an older request
            if (chunk.Data.Length == 0 || offset + chunk.Data.Length > size)
                throw new ReleaseBundleException($"the relay sent {chunk.Data.Length} bytes at {offset} of a {size}-byte bundle");
            await file.WriteAsync(chunk.Data, ct);
            offset += chunk.Data.Length;
            var percent = (int)(offset * 100 / size);
            if (percent / 10 != lastPercent / 10)
            {
                lastPercent = percent;
                await file.FlushAsync(ct);
                Send(new UpdateReport(d.Offer.Version, UpdateState.Downloading, (byte)percent, ""));
            }
        }
        file.Flush(flushToDisk: true);
        var seconds = Math.Max(0.001, _time.GetElapsedTime(started).TotalSeconds);
        LogDownloaded(_logger, d.Offer.Version, size, (size - startOffset) / seconds / 1024);
        file.Position = 0;
        var hash = await SHA256.HashDataAsync(file, ct);
        if (!hash.AsSpan().SequenceEqual(d.Offer.Sha256.Span))
        {
            await file.DisposeAsync();
            TryDelete(d.Path);
            throw new ReleaseBundleException("the downloaded bundle does not match the offer's SHA-256 (deleted; the next offer downloads it again)");
        }
        return true;
    }

    // Video first: the next chunk is asked for only when no frame waits to be sent (at most 250 ms of
    // waiting per chunk, so a camera that never idles still lets the download through slowly).
    private async Task WaitForIdleMediaAsync(CancellationToken ct)
    {
        if (_uplink is null) return;
        for (var i = 0; i < 25 && _uplink.Queue.HasFrames; i++)
            await Task.Delay(TimeSpan.FromMilliseconds(10), _time, ct);
    }

    private void Install(Download d, CancellationToken ct)
    {
        var version = d.Offer.Version;
        Send(new UpdateReport(version, UpdateState.Installing, 100, ""));
        string keyPem;
        try
        {
            keyPem = File.ReadAllText(_config.PublicKey);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ReleaseBundleException($"cannot read the release public key {_config.PublicKey}: {e.Message}");
        }
        using var key = ReleaseBundle.LoadPublicKey(keyPem);
        var current = _root.CurrentVersion() ?? RunningVersion;
        if (current == version) throw new ReleaseBundleException($"{version} is already the current release");
        Directory.CreateDirectory(_root.Releases);
        var staging = Path.Combine(_root.Releases, ".staging-" + version);
        if (Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
        ReleaseManifest manifest;
        using (var bundle = File.OpenRead(d.Path))
            manifest = ReleaseUnpacker.Unpack(bundle, key, staging, Architecture, ct);
        if (manifest.Version != version)
        {
            Directory.Delete(staging, recursive: true);
            throw new ReleaseBundleException($"the bundle offered as {version} contains version {manifest.Version}");
        }
        ct.ThrowIfCancellationRequested();
        var target = _root.ReleaseDir(version);
        if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
        Directory.Move(staging, target);
        InstallRoot.SyncDirectory(_root.Releases);
        // Trial first, then the switch: a kill in between leaves a trial the launcher drops (current did not change).
        var timeout = (int)Math.Ceiling(Duration.ParseOrDefault(_config.TrialTimeout, TimeSpan.FromMinutes(3)).TotalSeconds);
        _root.WriteTrial(new TrialRecord(version, current, timeout));
        _root.SwitchTo(version);
        TryDelete(d.Path);
        TryDelete(Path.Combine(_dir, version + ".offer"));
        LogSwitched(_logger, version, current, timeout);
        // The new release reports "trial" itself when it connects; this process only says it switched.
        Send(new UpdateReport(version, UpdateState.Installing, 100, $"switched from {current}; restarting into it on trial"));
        // Exit: the launcher (under systemd's Restart=) starts ROOT/current on trial.
        _lifetime?.StopApplication();
    }

    /// <summary>Tells the relay the release on trial committed.</summary>
    public void ReportCommitted(string version) => Send(new UpdateReport(version, UpdateState.Committed, 0, ""));

    private bool Send(UplinkMessage message) => _send?.Invoke(message) ?? false;

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Task? task;
        lock (_lock) task = _download?.Task;
        if (task is not null) await task.ContinueWith(_ => { }, TaskScheduler.Default);
        _stop.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Update: downloading {Version} ({Size} bytes)")]
    private static partial void LogDownloading(ILogger logger, string version, long size);

    [LoggerMessage(Level = LogLevel.Information, Message = "Update: resuming {Version} at byte {Offset} of {Size}")]
    private static partial void LogResuming(ILogger logger, string version, long offset, long size);

    [LoggerMessage(Level = LogLevel.Information, Message = "Update: downloaded {Version} ({Size} bytes, {KiBps:0} KiB/s)")]
    private static partial void LogDownloaded(ILogger logger, string version, long size, double kiBps);

    [LoggerMessage(Level = LogLevel.Information, Message = "Update: {Version} installed, current switched from {Previous}; restarting into it on trial ({Timeout} s)")]
    private static partial void LogSwitched(ILogger logger, string version, string previous, int timeout);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Update: refused {Version}: {Reason}")]
    private static partial void LogRefused(ILogger logger, string version, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Update: installing {Version} failed: {Reason}")]
    private static partial void LogFailed(ILogger logger, string version, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Update: {Version} was rolled back: {Reason}")]
    private static partial void LogRolledBackReported(ILogger logger, string version, string reason);
}
