using System.Buffers;
using System.ComponentModel;
using System.Diagnostics;
using System.IO.Pipelines;
using Microsoft.Extensions.Logging;
using Pinhole.Transport.Media;
using Pinhole.Transport.Nal;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Drivers.Cameras;

/// <summary>
/// A capture command (e.g. <c>rpicam-vid -t 0 --inline --codec h264 -o -</c> or ffmpeg) run
/// without a shell, whose stdout is an H.264 Annex-B stream. Access units are stamped at 90 kHz
/// from a monotonic clock when their first NAL unit arrives. stderr goes to the log, rate-limited.
/// The process is killed when the source is cancelled.
/// </summary>
internal sealed partial class ExecCameraSource : CameraSource
{
    private const int StderrLinesPerWindow = 20;
    private static readonly TimeSpan StderrWindow = TimeSpan.FromSeconds(10);

    private readonly IReadOnlyList<string> _argv;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>Creates the source for <paramref name="argv"/> (program and arguments). The source fails
    /// when the process writes nothing to stdout for <paramref name="outputTimeout"/> (default 20 s:
    /// long enough for a camera stack to start, short enough to notice a hung one).</summary>
    public ExecCameraSource(IReadOnlyList<string> argv, ILogger<ExecCameraSource> logger, TimeProvider? timeProvider = null, TimeSpan? outputTimeout = null)
    {
        OutputTimeout = outputTimeout ?? TimeSpan.FromSeconds(20);
        ArgumentNullException.ThrowIfNull(argv);
        ArgumentNullException.ThrowIfNull(logger);
        if (argv.Count == 0 || string.IsNullOrEmpty(argv[0])) throw new CameraConfigurationException("exec: command is empty");
        _argv = argv;
        _logger = logger;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Longest silence on stdout before the source gives up.</summary>
    public TimeSpan OutputTimeout { get; }

    /// <summary>The program and arguments that will be run.</summary>
    public IReadOnlyList<string> Arguments => _argv;

    /// <inheritdoc />
    public override string DisplayName => "exec:" + RtspUrl.RedactText(string.Join(' ', _argv));

    /// <inheritdoc />
    public override async Task RunAsync(IMediaSink sink, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(sink);
        var psi = new ProcessStartInfo(_argv[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in _argv.Skip(1)) psi.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new CameraException($"{DisplayName}: the process did not start");
        }
        catch (Win32Exception e)
        {
            throw new CameraException($"{DisplayName}: cannot start '{RtspUrl.RedactText(_argv[0])}': {e.Message}", e);
        }
        using var _ = process;
        process.StandardInput.Close(); // a capture tool must not wait for input
        Log.Started(_logger, DisplayName, process.Id);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var stderr = PumpStderrAsync(process, stop.Token);
        try
        {
            await ReadStreamAsync(process.StandardOutput.BaseStream, sink, cancellationToken).ConfigureAwait(false);
            // stdout ended: the process is exiting or closed its output.
            cancellationToken.ThrowIfCancellationRequested();
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2), _time);
            try { await process.WaitForExitAsync(grace.Token).ConfigureAwait(false); }
            catch (OperationCanceledException) { }
            // Let stderr run to its end before saying why: a tool prints its reason last, just before
            // exiting, and cancelling the reader at once lost those lines from the log and the error.
            if (process.HasExited)
            {
                try { await stderr.WaitAsync(TimeSpan.FromSeconds(2), _time, CancellationToken.None).ConfigureAwait(false); }
                catch (TimeoutException) { }
            }
            var how = process.HasExited ? $"exited with code {process.ExitCode}" : "closed its output";
            throw new CameraException($"{DisplayName}: the capture process {how}{LastStderr()}");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Normal stop.
        }
        catch (MediaFormatException e)
        {
            throw new CameraException($"{DisplayName}: the capture output is not a valid H.264 Annex-B stream: {e.Message}", e);
        }
        finally
        {
            if (!process.HasExited)
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                Log.Killed(_logger, DisplayName, process.Id);
            }
            await stop.CancelAsync().ConfigureAwait(false);
            try { await stderr.ConfigureAwait(false); } catch (OperationCanceledException) { }
        }
    }

    /// <summary>Reads an Annex-B H.264 stream and delivers access units; returns at end of stream.</summary>
    internal async Task ReadStreamAsync(Stream stream, IMediaSink sink, CancellationToken cancellationToken)
    {
        var reader = PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 256 * 1024, minimumReadSize: 16 * 1024));
        var framer = new AnnexBFramer(MediaCodec.H264, new MediaSinkMultiplexer(sink, 1), _time);
        using var idle = new CancellationTokenSource(OutputTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, idle.Token);
        try
        {
            while (true)
            {
                ReadResult result;
                try
                {
                    result = await reader.ReadAsync(linked.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (idle.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    throw new CameraException($"{DisplayName}: no output for {OutputTimeout.TotalSeconds:0.#} s{LastStderr()}");
                }
                idle.CancelAfter(OutputTimeout);
                var consumed = framer.Feed(result.Buffer, result.IsCompleted);
                reader.AdvanceTo(consumed, result.Buffer.End);
                if (result.IsCompleted)
                {
                    framer.Flush();
                    return;
                }
            }
        }
        finally
        {
            await reader.CompleteAsync().ConfigureAwait(false);
        }
    }

    private sealed class AnnexBFramer(MediaCodec codec, IAccessUnitOutput output, TimeProvider time)
    {
        private readonly NalUnitAssembler _assembler = new(codec, 0);
        private readonly long _origin = time.GetTimestamp();
        private bool _hasVcl;
        private long _pts;

        public SequencePosition Feed(ReadOnlySequence<byte> buffer, bool isFinal)
        {
            var reader = new SequenceReader<byte>(buffer);
            while (AnnexBReader.TryReadNalUnit(ref reader, isFinal, out var nalSequence))
            {
                // The assembler copies what it keeps, so a NAL unit in one pipe segment is read in place.
                ReadOnlySpan<byte> nal = nalSequence.IsSingleSegment ? nalSequence.FirstSpan : nalSequence.ToArray();
                if (AccessUnitBoundary.StartsNewAccessUnit(codec, nal, _hasVcl))
                {
                    _assembler.Complete(_pts, output);
                    _hasVcl = false;
                }
                if (!_assembler.HasPending) _pts = Now();
                _assembler.Add(nal);
                _hasVcl |= AccessUnitBoundary.IsVcl(codec, nal);
            }
            return reader.Position;
        }

        public void Flush()
        {
            if (_hasVcl) _assembler.Complete(_pts, output);
        }

        // 90 kHz from the monotonic clock (RFC 6184 §5.1 uses a 90 kHz clock for video).
        private long Now() => (long)(time.GetElapsedTime(_origin).Ticks * 90000 / TimeSpan.TicksPerSecond);
    }

    private readonly Queue<string> _recentStderr = new();

    private string LastStderr()
    {
        lock (_recentStderr) return _recentStderr.Count == 0 ? "" : ": " + string.Join(" | ", _recentStderr);
    }

    private async Task PumpStderrAsync(Process process, CancellationToken cancellationToken)
    {
        var windowStart = _time.GetTimestamp();
        var inWindow = 0;
        var suppressed = 0;
        while (true)
        {
            string? line;
            try { line = await process.StandardError.ReadLineAsync(cancellationToken).ConfigureAwait(false); }
            catch (OperationCanceledException) { return; }
            catch (IOException) { return; }
            if (line is null) return;
            line = RtspUrl.RedactText(line.Length > 500 ? line[..500] : line);
            lock (_recentStderr)
            {
                _recentStderr.Enqueue(line);
                while (_recentStderr.Count > 3) _recentStderr.Dequeue();
            }
            if (_time.GetElapsedTime(windowStart) > StderrWindow)
            {
                if (suppressed > 0) Log.StderrSuppressed(_logger, DisplayName, suppressed);
                windowStart = _time.GetTimestamp();
                inWindow = suppressed = 0;
            }
            if (++inWindow <= StderrLinesPerWindow) Log.Stderr(_logger, DisplayName, line);
            else suppressed++;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Source}: started process {Pid}")]
        public static partial void Started(ILogger logger, string source, int pid);

        [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "{Source}: killed process {Pid}")]
        public static partial void Killed(ILogger logger, string source, int pid);

        [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "{Source} stderr: {Line}")]
        public static partial void Stderr(ILogger logger, string source, string line);

        [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "{Source}: {Count} stderr lines suppressed")]
        public static partial void StderrSuppressed(ILogger logger, string source, int count);
    }
}
