using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Pinhole.Transport.H264;
using Pinhole.Transport.Media;
using Pinhole.Transport.Rtp;
using Pinhole.Transport.Rtsp;

namespace Pinhole.Benchmarks;

/// <summary>
/// A test camera whose pictures carry the wall-clock time they were made: each raw I420 frame
/// (640x360, 25 fps) gets the Unix time in milliseconds burned in as a barcode (48 bits, one
/// 26x32 black or white block per bit, then the same bits inverted as a check), is written to
/// ffmpeg (libx264 ultrafast/zerolatency, no B-frames, GOP 1 s), whose RTP over loopback UDP is
/// depacketized by Pinhole's <see cref="H264Depacketizer"/> and handed to the sinks (the relays'
/// streams). RTP's marker bit ends each frame, so no frame waits for the next one to be split off.
/// A page reads the barcode back from the video element (see <see cref="ReaderScript"/>).
/// </summary>
internal sealed class StampedCamera : IAsyncDisposable
{
    public const int Width = 640;
    public const int Height = 360;
    public const int Fps = 25;
    private const int Bits = 48;
    private const int BlockWidth = 26;
    private const int BlockHeight = 32;
    private const int BitsPerRow = 24;

    private readonly Process _ffmpeg;
    private readonly UdpClient _rtp;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _writer;
    private readonly Task _reader;
    private readonly IMediaSink[] _sinks;

    private StampedCamera(Process ffmpeg, UdpClient rtp, IMediaSink[] sinks)
    {
        _ffmpeg = ffmpeg;
        _rtp = rtp;
        _sinks = sinks;
        _writer = Task.Run(WriteFramesAsync);
        _reader = Task.Run(ReadRtpAsync);
    }

    /// <summary>Frames stamped and written to the encoder.</summary>
    public long FramesWritten;

    /// <summary>Access units handed to the sinks.</summary>
    public long UnitsDelivered;

    public static StampedCamera Start(params IMediaSink[] sinks)
    {
        var rtp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        rtp.Client.ReceiveBufferSize = 4 * 1024 * 1024;
        var port = ((IPEndPoint)rtp.Client.LocalEndPoint!).Port;
        var psi = new ProcessStartInfo("ffmpeg") { RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in ("-hide_banner -loglevel error -f rawvideo -pix_fmt yuv420p -s " + $"{Width}x{Height} -framerate {Fps} -i pipe:0 -an " +
                 $"-c:v libx264 -preset ultrafast -tune zerolatency -threads 1 -g {Fps} -bf 0 -b:v 1500k -pix_fmt yuv420p " +
                 $"-payload_type 96 -sdp_file /dev/null -f rtp rtp://127.0.0.1:{port}?pkt_size=1200").Split(' '))
            psi.ArgumentList.Add(a);
        var ffmpeg = Process.Start(psi) ?? throw new InvalidOperationException("ffmpeg did not start");
        ffmpeg.ErrorDataReceived += (_, e) => { if (!string.IsNullOrWhiteSpace(e.Data)) Console.Error.WriteLine("  ffmpeg: " + e.Data); };
        ffmpeg.BeginErrorReadLine();
        return new StampedCamera(ffmpeg, rtp, sinks);
    }

    private async Task WriteFramesAsync()
    {
        var frame = new byte[Width * Height * 3 / 2];
        frame.AsSpan(Width * Height).Fill(128); // grey: no chroma
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1.0 / Fps));
        var stdin = _ffmpeg.StandardInput.BaseStream;
        try
        {
            for (var n = 0; await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false); n++)
            {
                // Moving content below the barcode, so the encoder does real work on every frame.
                for (var y = BlockHeight * 4; y < Height; y++)
                {
                    var row = frame.AsSpan(y * Width, Width);
                    for (var x = 0; x < Width; x++) row[x] = (byte)(x + y + n * 6);
                }
                var stamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                DrawStamp(frame, stamp);
                await stdin.WriteAsync(frame, _stop.Token).ConfigureAwait(false);
                await stdin.FlushAsync(_stop.Token).ConfigureAwait(false);
                Interlocked.Increment(ref FramesWritten);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
    }

    /// <summary>Rows 0-1: the 48 bits, most significant first; rows 2-3: the same bits inverted.</summary>
    private static void DrawStamp(byte[] frame, long stamp)
    {
        for (var bit = 0; bit < Bits; bit++)
        {
            var one = ((stamp >> (Bits - 1 - bit)) & 1) == 1;
            Block(frame, bit / BitsPerRow, bit % BitsPerRow, one);
            Block(frame, 2 + bit / BitsPerRow, bit % BitsPerRow, !one);
        }
    }

    private static void Block(byte[] frame, int row, int column, bool white)
    {
        for (var y = row * BlockHeight; y < (row + 1) * BlockHeight; y++)
            frame.AsSpan(y * Width + column * BlockWidth, BlockWidth).Fill(white ? (byte)235 : (byte)16);
    }

    private async Task ReadRtpAsync()
    {
        var depacketizer = new H264Depacketizer(0);
        var output = new MediaSinkMultiplexer(new FanOut(this), 1);
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var datagram = await _rtp.ReceiveAsync(_stop.Token).ConfigureAwait(false);
                try
                {
                    depacketizer.Push(RtpPacket.Parse(datagram.Buffer), output);
                }
                catch (MediaFormatException)
                {
                    // A malformed or lost packet drops that frame; the next keyframe recovers.
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
    }

    private sealed class FanOut(StampedCamera camera) : IMediaSink
    {
        public void OnTracks(IReadOnlyList<TrackInfo> tracks)
        {
            foreach (var s in camera._sinks) s.OnTracks(tracks);
        }

        public void OnAccessUnit(in AccessUnit unit)
        {
            Interlocked.Increment(ref camera.UnitsDelivered);
            foreach (var s in camera._sinks) s.OnAccessUnit(unit);
        }
    }

    /// <summary>
    /// Page script: on every frame the video element presents (requestVideoFrameCallback), draws it
    /// to a canvas, reads the barcode and pushes <c>Date.now() − stamp</c> at the callback (ms) to
    /// <c>window.g2g</c>, and <c>expectedDisplayTime − stamp</c> (the compositor's planned display
    /// time on the wall clock) to <c>window.g2gExpected</c>; frames whose check rows disagree count
    /// in <c>window.g2gUnreadable</c>.
    /// </summary>
    public static string ReaderScript => string.Create(CultureInfo.InvariantCulture, $$"""
        const v = document.getElementById('video');
        window.g2g = []; window.g2gExpected = []; window.g2gUnreadable = 0; window.g2gStop = false;
        const c = document.createElement('canvas'); c.width = {{Width}}; c.height = {{Height}};
        const ctx = c.getContext('2d', { willReadFrequently: true });
        const bit = (d, row, col) => d[(((row * {{BlockHeight}}) + {{BlockHeight / 2}}) * {{Width}} + col * {{BlockWidth}} + {{BlockWidth / 2}}) * 4 + 1] > 128 ? 1 : 0;
        const onFrame = (now, meta) => {
          if (window.g2gStop) return;
          const wall = Date.now();
          const epoch = wall - performance.now();
          ctx.drawImage(v, 0, 0, {{Width}}, {{Height}});
          const d = ctx.getImageData(0, 0, {{Width}}, {{BlockHeight * 4}}).data;
          let stamp = 0, ok = true;
          for (let i = 0; i < {{Bits}}; i++) {
            const b = bit(d, Math.floor(i / {{BitsPerRow}}), i % {{BitsPerRow}});
            if (b === bit(d, 2 + Math.floor(i / {{BitsPerRow}}), i % {{BitsPerRow}})) ok = false;
            stamp = stamp * 2 + b;
          }
          if (ok) { window.g2g.push(wall - stamp); window.g2gExpected.push(epoch + meta.expectedDisplayTime - stamp); } else window.g2gUnreadable++;
          v.requestVideoFrameCallback(onFrame);
        };
        v.requestVideoFrameCallback(onFrame);
        """);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try { _ffmpeg.StandardInput.Close(); } catch (IOException) { }
        if (!_ffmpeg.WaitForExit(5000)) _ffmpeg.Kill(entireProcessTree: true);
        _rtp.Dispose();
        await Task.WhenAll(_writer, _reader).ConfigureAwait(false);
        _ffmpeg.Dispose();
        _stop.Dispose();
    }
}
