using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Pinhole.Benchmarks;

/// <summary>
/// Where ffmpeg pushes MPEG-TS (<c>-f mpegts tcp://…</c>) in a benchmark: accepts one TCP connection,
/// reassembles the video PES packets (ISO/IEC 13818-1 §2.4.3: a PES starts in the TS packet with
/// payload_unit_start_indicator set) and records, for each access unit, when its last byte arrived and
/// the same content fingerprint as <see cref="ArrivalRecorder"/>, so ffmpeg's frames can be matched
/// with a direct viewer's exactly like the relay's. ffmpeg's mpegts muxer writes one PES per video
/// frame whose payload ends with the frame's last slice, as the RTP depacketizer's access unit does.
/// </summary>
/// <remarks>The listening and accepting are <see cref="TcpSink"/>'s.</remarks>
internal sealed class TsArrivalSink : IAsyncDisposable
{
    private const int PacketSize = 188;
    private readonly TcpSink _sink;
    private readonly Lock _lock = new();
    private readonly List<ArrivalRecorder.Arrival> _arrivals = [];

    public TsArrivalSink(IPAddress address, CancellationToken cancellationToken)
        => _sink = new TcpSink(address, ReadAllAsync, cancellationToken);

    /// <summary>The port it listens on.</summary>
    public int Port => _sink.Port;

    /// <summary>Access units received so far.</summary>
    public IReadOnlyList<ArrivalRecorder.Arrival> Snapshot()
    {
        lock (_lock) return [.. _arrivals];
    }

    private async Task ReadAllAsync(NetworkStream stream, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        var filled = 0;
        var pes = new MemoryStream();
        var videoPid = -1;
        long lastAt = 0;
        while (true)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
            if (n == 0) break;
            var now = Stopwatch.GetTimestamp();
            filled += n;
            var offset = 0;
            for (; filled - offset >= PacketSize; offset += PacketSize)
            {
                var p = buffer.AsSpan(offset, PacketSize);
                if (p[0] != 0x47) throw new InvalidDataException("lost MPEG-TS sync");
                var start = (p[1] & 0x40) != 0;
                var pid = ((p[1] & 0x1F) << 8) | p[2];
                var afc = (p[3] >> 4) & 3;
                if ((afc & 1) == 0) continue; // no payload
                var payload = p[4..];
                if ((afc & 2) != 0) payload = payload[Math.Min(payload.Length, 1 + payload[0])..];
                // The first PES with a video stream_id (0xE0-0xEF) fixes the video PID.
                if (videoPid < 0 && start && payload.Length > 9 && payload[0] == 0 && payload[1] == 0 && payload[2] == 1 && (payload[3] & 0xF0) == 0xE0) videoPid = pid;
                if (pid != videoPid) continue;
                if (start)
                {
                    Complete(pes, lastAt);
                    if (payload.Length < 9) continue;
                    payload = payload[Math.Min(payload.Length, 9 + payload[8])..]; // PES header
                }
                pes.Write(payload);
                lastAt = now;
            }
            buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
            filled -= offset;
        }
    }

    private void Complete(MemoryStream pes, long at)
    {
        if (pes.Length == 0) return;
        var data = pes.GetBuffer().AsSpan(0, (int)pes.Length);
        var tail = data[Math.Max(0, data.Length - 256)..];
        var hash = 14695981039346656037UL;
        foreach (var b in tail) hash = (hash ^ b) * 1099511628211UL;
        lock (_lock) _arrivals.Add(new ArrivalRecorder.Arrival(at, hash, 0, false, data.Length));
        pes.SetLength(0);
    }

    public ValueTask DisposeAsync() => _sink.DisposeAsync();
}
