using System.Buffers;
using System.Buffers.Binary;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Pinhole.Drivers.Sensors;

namespace Pinhole.EdgeHost.Telemetry.Outbox;

/// <summary>
/// The disk-backed outbox between the sensor loops and the MQTT session: a reading is appended
/// to an append-only, checksummed segment log and fsynced (group commit: appends that arrive
/// during one fsync share the next) before <see cref="AppendAsync"/> completes, and it leaves the
/// disk only after <see cref="Acknowledge"/> (the broker's PUBACK). Survives broker and network
/// outages and <c>kill -9</c>; bounded by <see cref="OutboxOptions.MaxBytes"/>, dropping the oldest
/// segment first and counting what was dropped in <see cref="DroppedCount"/>. Assigns per-sensor
/// sequence numbers that count up by one per reading and survive restarts.
/// </summary>
/// <remarks>
/// Files in the directory: <c>NNNNNNNNNNNNNNNNNNNN.seg</c> (first record index in the name) and
/// <c>cursor</c> (the index everything up to which was acknowledged, in two checksummed slots
/// written alternately, so a torn write leaves the previous value). One process owns the
/// directory at a time. Thread-safe.
/// </remarks>
public sealed partial class TelemetryOutbox : IAsyncDisposable
{
    private const string CursorFile = "cursor";
    private const int CursorSlotSize = 24; // u64 generation, u64 acked-through, u32 crc, u32 zero

    private readonly string _directory;
    private readonly OutboxOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly Channel<AppendRequest?> _appends = Channel.CreateUnbounded<AppendRequest?>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Dictionary<string, long> _lastSequence = new(StringComparer.Ordinal);
    private readonly List<Segment> _segments = [];
    private readonly List<OutboxRecord> _pending = []; // by index; [_head..] are live
    private readonly ArrayBufferWriter<byte> _buffer = new(16 * 1024);
    private readonly Task _writer;
    private int _head;
    private long _nextIndex;
    private long _ackedThrough;
    private long _savedAckedThrough;
    private long _cursorGeneration;
    private long _dropped;
    private long _totalBytes;
    private bool _ackDirty;
    private long _lastCursorSave;
    private FileStream? _active;
    private SafeFileHandleBox? _cursorHandle;
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private TelemetryOutbox(string directory, OutboxOptions options, ILogger logger, TimeProvider time)
    {
        _directory = directory;
        _options = options;
        _logger = logger;
        _time = time;
        Recover();
        StartSegment();
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Opens (creating if needed) the outbox in <paramref name="directory"/> and recovers what a previous process left.</summary>
    public static TelemetryOutbox Open(string directory, OutboxOptions? options = null, ILogger? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        return new TelemetryOutbox(directory, options ?? new OutboxOptions(), logger ?? NullLogger.Instance, timeProvider ?? TimeProvider.System);
    }

    /// <summary>Readings dropped because the outbox was full (oldest first), since this process opened it.</summary>
    public long DroppedCount => Interlocked.Read(ref _dropped);

    /// <summary>Readings on disk not yet acknowledged by the broker.</summary>
    public int PendingCount { get { lock (_lock) return _pending.Count - _head - CountAcked(); } }

    /// <summary>Bytes of segment files on disk.</summary>
    public long SizeBytes { get { lock (_lock) return _totalBytes; } }

    /// <summary>The last sequence number given to <paramref name="sensor"/> (0 when it never had a reading).</summary>
    public long LastSequence(string sensor)
    {
        lock (_lock) return _lastSequence.GetValueOrDefault(sensor);
    }

    /// <summary>
    /// Gives <paramref name="reading"/> the next sequence number of <paramref name="sensor"/> and
    /// completes once it is on disk (written and fsynced). Cancelling abandons the wait, not the write.
    /// </summary>
    /// <exception cref="IOException">The disk write failed; the reading is not in the outbox and its sequence number will be reused.</exception>
    public async Task<OutboxRecord> AppendAsync(string sensor, SensorReading reading, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(sensor);
        if (!double.IsFinite(reading.Value)) throw new ArgumentException("the value must be finite", nameof(reading));
        var request = new AppendRequest(sensor, reading);
        if (!_appends.Writer.TryWrite(request))
            throw new ObjectDisposedException(nameof(TelemetryOutbox));
        return await request.Done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Up to <paramref name="max"/> unacknowledged records with an index above <paramref name="afterIndex"/>, in order.</summary>
    public IReadOnlyList<OutboxRecord> GetPending(long afterIndex, int max)
    {
        var result = new List<OutboxRecord>(Math.Min(max, 256));
        lock (_lock)
        {
            for (var i = FindFirstAfter(afterIndex); i < _pending.Count && result.Count < max; i++)
                if (!_pending[i].Acknowledged)
                    result.Add(_pending[i]);
        }
        return result;
    }

    /// <summary>Completes when a record with an index above <paramref name="afterIndex"/> is pending.</summary>
    public async Task WaitForPendingAsync(long afterIndex, CancellationToken cancellationToken)
    {
        while (true)
        {
            Task appended;
            lock (_lock)
            {
                for (var i = FindFirstAfter(afterIndex); i < _pending.Count; i++)
                    if (!_pending[i].Acknowledged) return;
                appended = _appended.Task;
            }
            await appended.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The broker acknowledged the record: it may leave the disk. Unknown or repeated indexes are ignored.</summary>
    public void Acknowledge(long index)
    {
        lock (_lock)
        {
            var i = FindFirstAfter(index - 1);
            if (i >= _pending.Count || _pending[i].Index != index || _pending[i].Acknowledged) return;
            _pending[i].Acknowledged = true;
            while (_head < _pending.Count && _pending[_head].Acknowledged) _head++;
            _ackedThrough = _head < _pending.Count ? _pending[_head].Index - 1 : _nextIndex - 1;
            CompactPending();
            if (_ackDirty) return;
            _ackDirty = true;
        }
        _appends.Writer.TryWrite(null); // wake the writer to save the cursor in a while
    }

    /// <summary>Finishes pending writes, saves the cursor and closes the files.</summary>
    public async ValueTask DisposeAsync()
    {
        _appends.Writer.TryComplete();
        try
        {
            await _writer.ConfigureAwait(false);
        }
        finally
        {
            lock (_lock)
            {
                TrySaveCursor();
                _active?.Dispose();
                _active = null;
                _cursorHandle?.Stream.Dispose();
                _appended.TrySetCanceled();
            }
        }
    }

    private async Task WriteLoopAsync()
    {
        var reader = _appends.Reader;
        var batch = new List<AppendRequest>();
        Task<bool>? waitRead = null;
        while (true)
        {
            waitRead ??= reader.WaitToReadAsync().AsTask();
            if (!waitRead.IsCompleted)
            {
                TimeSpan? due;
                lock (_lock) due = _ackDirty ? _options.CursorSaveInterval - _time.GetElapsedTime(_lastCursorSave) : null;
                if (due is { } d && d > TimeSpan.Zero)
                    await Task.WhenAny(waitRead, Task.Delay(d, _time)).ConfigureAwait(false);
                else if (due is null)
                    await waitRead.ConfigureAwait(false);
            }
            if (waitRead.IsCompleted)
            {
                if (!await waitRead.ConfigureAwait(false)) break; // completed by DisposeAsync
                waitRead = null;
            }

            batch.Clear();
            while (reader.TryRead(out var item))
                if (item is not null) batch.Add(item);
            if (batch.Count > 0)
                WriteBatch(batch);

            lock (_lock)
            {
                if (_ackDirty && _time.GetElapsedTime(_lastCursorSave) >= _options.CursorSaveInterval)
                    TrySaveCursor();
            }
        }
    }

    private void WriteBatch(List<AppendRequest> batch)
    {
        // Sequence numbers become visible (LastSequence, the next checkpoint) only once the batch
        // is on disk; a failed write leaves them as they were, to be given out again.
        var records = new List<OutboxRecord>(batch.Count);
        var assigned = new Dictionary<string, long>(StringComparer.Ordinal);
        var firstIndex = _nextIndex;
        lock (_lock)
        {
            _buffer.ResetWrittenCount();
            foreach (var request in batch)
            {
                var seq = (assigned.TryGetValue(request.Sensor, out var last) ? last : _lastSequence.GetValueOrDefault(request.Sensor)) + 1;
                assigned[request.Sensor] = seq;
                var record = new OutboxRecord(firstIndex + records.Count, request.Sensor, seq, request.Reading.Value, request.Reading.Unit ?? "", request.Reading.Timestamp.ToUniversalTime());
                SegmentFormat.WriteReading(_buffer, record);
                records.Add(record);
            }
        }
        try
        {
            // Outside the lock: readers and acks go on while the disk works.
            _active!.Write(_buffer.WrittenSpan);
            _active.Flush(flushToDisk: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogWriteFailed(_logger, e, batch.Count);
            lock (_lock)
            {
                // The segment may now end in a partial record; nothing may follow it there. Its
                // indexes are burnt so recovery never meets one twice.
                _nextIndex = firstIndex + records.Count;
                try { StartSegment(); } catch (IOException again) { LogWriteFailed(_logger, again, 0); }
            }
            foreach (var request in batch) request.Done.TrySetException(e);
            return;
        }

        TaskCompletionSource appended;
        lock (_lock)
        {
            _nextIndex = firstIndex + records.Count;
            foreach (var (sensor, seq) in assigned) _lastSequence[sensor] = seq;
            var segment = _segments[^1];
            segment.Bytes += _buffer.WrittenCount;
            segment.LastIndex = records[^1].Index;
            _totalBytes += _buffer.WrittenCount;
            _pending.AddRange(records);
            if (segment.Bytes >= _options.EffectiveSegmentBytes)
                StartSegment();
            EnforceSizeBound();
            appended = _appended;
            _appended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        for (var i = 0; i < batch.Count; i++)
            batch[i].Done.TrySetResult(records[i]);
        appended.TrySetResult();
    }

    // Called under the lock.
    private void EnforceSizeBound()
    {
        while (_totalBytes > _options.MaxBytes && _segments.Count > 1)
        {
            var oldest = _segments[0];
            var dropped = 0;
            while (_head < _pending.Count && _pending[_head].Index <= oldest.LastIndex)
            {
                if (!_pending[_head].Acknowledged) dropped++;
                _head++;
            }
            DeleteSegment(oldest);
            if (dropped > 0)
            {
                Interlocked.Add(ref _dropped, dropped);
                LogDropped(_logger, dropped, _options.MaxBytes, Interlocked.Read(ref _dropped));
            }
            _ackedThrough = Math.Max(_ackedThrough, _head < _pending.Count ? _pending[_head].Index - 1 : _nextIndex - 1);
            _ackDirty = true;
        }
        CompactPending();
    }

    // Called under the lock. Writes the cursor, then deletes segments that hold only acknowledged records.
    private void TrySaveCursor()
    {
        _lastCursorSave = _time.GetTimestamp();
        _ackDirty = false;
        if (_ackedThrough == _savedAckedThrough) return;
        try
        {
            var slot = new byte[CursorSlotSize];
            var generation = ++_cursorGeneration;
            BinaryPrimitives.WriteInt64LittleEndian(slot, generation);
            BinaryPrimitives.WriteInt64LittleEndian(slot.AsSpan(8), _ackedThrough);
            BinaryPrimitives.WriteUInt32LittleEndian(slot.AsSpan(16), SegmentFormat.Crc(slot.AsSpan(0, 16), default));
            _cursorHandle ??= new SafeFileHandleBox(new FileStream(Path.Combine(_directory, CursorFile), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1));
            var stream = _cursorHandle.Stream;
            stream.Position = generation % 2 * CursorSlotSize;
            stream.Write(slot);
            stream.Flush(flushToDisk: true);
            _savedAckedThrough = _ackedThrough;
            while (_segments.Count > 1 && _segments[0].LastIndex <= _ackedThrough)
                DeleteSegment(_segments[0]);
        }
        catch (IOException e)
        {
            LogCursorFailed(_logger, e);
            _ackDirty = true;
        }
    }

    private void DeleteSegment(Segment segment)
    {
        try
        {
            File.Delete(segment.Path);
        }
        catch (IOException e)
        {
            LogCursorFailed(_logger, e);
        }
        _totalBytes -= segment.Bytes;
        _segments.Remove(segment);
    }

    // Called under the lock (or from the constructor). Every segment starts with a checkpoint of the
    // last sequence numbers, so they survive even when every older segment has been deleted.
    private void StartSegment()
    {
        if (_active is { } previous)
        {
            previous.Flush(flushToDisk: true);
            previous.Dispose();
            _active = null;
        }
        var index = _nextIndex++;
        var path = Path.Combine(_directory, SegmentFormat.FileName(index));
        var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, bufferSize: 0);
        var buffer = new ArrayBufferWriter<byte>();
        SegmentFormat.WriteCheckpoint(buffer, index, _lastSequence);
        stream.Write(buffer.WrittenSpan);
        stream.Flush(flushToDisk: true);
        DirectorySync.Fsync(_directory);
        _active = stream;
        _segments.Add(new Segment(path, index) { Bytes = buffer.WrittenCount, LastIndex = index });
        _totalBytes += buffer.WrittenCount;
        if (_head == _pending.Count) _ackedThrough = Math.Max(_ackedThrough, index);
    }

    private void Recover()
    {
        _ackedThrough = ReadCursor();
        _savedAckedThrough = _ackedThrough;
        var maxIndex = _ackedThrough;
        var files = Directory.GetFiles(_directory, "*" + SegmentFormat.Extension)
            .Select(p => (Path: p, First: long.TryParse(Path.GetFileNameWithoutExtension(p), out var f) ? f : -1))
            .Where(s => s.First >= 0)
            .OrderBy(s => s.First)
            .ToList();
        foreach (var (path, first) in files)
        {
            var data = File.ReadAllBytes(path);
            var offset = 0;
            var lastIndex = first - 1;
            while (SegmentFormat.TryRead(data.AsSpan(offset), out var record))
            {
                if (record.Index <= lastIndex) break; // indexes only go up; anything else is not ours
                lastIndex = record.Index;
                offset += record.Size;
                if (record.Checkpoint is { } checkpoint)
                {
                    foreach (var (sensor, seq) in checkpoint)
                        _lastSequence[sensor] = Math.Max(seq, _lastSequence.GetValueOrDefault(sensor));
                }
                else if (record.Reading is { } reading)
                {
                    _lastSequence[reading.Sensor] = Math.Max(reading.Sequence, _lastSequence.GetValueOrDefault(reading.Sensor));
                    if (reading.Index > _ackedThrough) _pending.Add(reading);
                }
            }
            if (offset < data.Length)
                LogTornTail(_logger, path, offset, data.Length - offset);
            if (lastIndex < first)
            {
                // Not even its checkpoint survived (crash while creating it): nothing to keep.
                File.Delete(path);
                continue;
            }
            maxIndex = Math.Max(maxIndex, lastIndex);
            _segments.Add(new Segment(path, first) { Bytes = data.Length, LastIndex = lastIndex });
            _totalBytes += data.Length;
        }
        _nextIndex = maxIndex + 1;
        if (_pending.Count > 0)
            LogRecovered(_logger, _pending.Count, _directory);
    }

    private long ReadCursor()
    {
        var path = Path.Combine(_directory, CursorFile);
        if (!File.Exists(path)) return 0;
        var data = File.ReadAllBytes(path);
        long best = 0, bestGeneration = 0;
        for (var slot = 0; slot + CursorSlotSize <= data.Length && slot < 2 * CursorSlotSize; slot += CursorSlotSize)
        {
            var s = data.AsSpan(slot, CursorSlotSize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(s[16..]) != SegmentFormat.Crc(s[..16], default)) continue;
            var generation = BinaryPrimitives.ReadInt64LittleEndian(s);
            if (generation <= bestGeneration) continue;
            bestGeneration = generation;
            best = BinaryPrimitives.ReadInt64LittleEndian(s[8..]);
        }
        _cursorGeneration = bestGeneration;
        return best;
    }

    private int FindFirstAfter(long index)
    {
        int lo = _head, hi = _pending.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (_pending[mid].Index <= index) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    private int CountAcked()
    {
        var n = 0;
        for (var i = _head; i < _pending.Count; i++) if (_pending[i].Acknowledged) n++;
        return n;
    }

    private void CompactPending()
    {
        if (_head > 4096 && _head > _pending.Count / 2)
        {
            _pending.RemoveRange(0, _head);
            _head = 0;
        }
    }

    private sealed class Segment(string path, long firstIndex)
    {
        public string Path { get; } = path;
        public long FirstIndex { get; } = firstIndex;
        public long Bytes { get; set; }
        public long LastIndex { get; set; }
    }

    private sealed record SafeFileHandleBox(FileStream Stream);

    private sealed class AppendRequest(string sensor, SensorReading reading)
    {
        public string Sensor { get; } = sensor;
        public SensorReading Reading { get; } = reading;
        public TaskCompletionSource<OutboxRecord> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Telemetry outbox: writing {Count} readings failed; they were not stored")]
    private static partial void LogWriteFailed(ILogger logger, Exception exception, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Telemetry outbox full ({MaxBytes} bytes): dropped the {Dropped} oldest unacknowledged readings ({Total} dropped since start)")]
    private static partial void LogDropped(ILogger logger, int dropped, long maxBytes, long total);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Telemetry outbox: could not save the cursor or delete a segment")]
    private static partial void LogCursorFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Telemetry outbox: {Path} ends in {Bytes} bytes of a torn or corrupt record at offset {Offset}; the records before it are kept")]
    private static partial void LogTornTail(ILogger logger, string path, int offset, int bytes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Telemetry outbox: {Count} unacknowledged readings recovered from {Directory}")]
    private static partial void LogRecovered(ILogger logger, int count, string directory);
}
