using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Pinhole.Transport.Srtp;

namespace Pinhole.Benchmarks;

/// <summary>
/// SRTP protect/unprotect throughput of <see cref="SrtpSession"/> (AES_CM_128_HMAC_SHA1_80) on
/// 1200-byte RTP packets, a typical WebRTC video packet, beside the cost of the bare primitives
/// doing the same bytes: .NET's AES (ECB over counter blocks, as AES-CM needs) plus HMAC-SHA1, and
/// OpenSSL's <c>openssl speed</c> for AES-128-CTR and HMAC-SHA1. Rates are per CPU second of this
/// process (the machine is shared), median of several runs. Packet count: PINHOLE_BENCH_SRTP_PACKETS.
/// </summary>
internal sealed class SrtpBenchmark : IBenchmark
{
    private const int PacketSize = 1200;
    private const int HeaderSize = 12;
    private const int Runs = 5;

    public string Name => "srtp";

    public string Description => "SRTP protect/unprotect of 1200-byte RTP packets; beside .NET AES-ECB-counter + HMAC-SHA1 and openssl speed (aes-128-ctr + hmac sha1)";

    public Task<string> RunAsync(CancellationToken cancellationToken)
    {
        var packets = int.TryParse(Environment.GetEnvironmentVariable("PINHOLE_BENCH_SRTP_PACKETS"), CultureInfo.InvariantCulture, out var p) ? p : 100_000;
        var key = RandomNumberGenerator.GetBytes(16);
        var salt = RandomNumberGenerator.GetBytes(14);

        // Protected packets for the unprotect runs, made once.
        var rtp = new byte[PacketSize];
        rtp[0] = 0x80;
        rtp[1] = 96;
        BinaryPrimitives.WriteUInt32BigEndian(rtp.AsSpan(8), 0x12345678);
        RandomNumberGenerator.Fill(rtp.AsSpan(HeaderSize));

        // Warm-up: enough packets on every path for tiered JIT to settle before anything is measured.
        Measure(20_000, ProtectRun(key, salt, rtp));
        Measure(20_000, UnprotectRun(key, salt, rtp, 20_000));
        Measure(20_000, BareRun(key));
        var protect = Median(() => Measure(packets, ProtectRun(key, salt, rtp)));
        var unprotect = Median(() => Measure(packets, UnprotectRun(key, salt, rtp, packets)));
        var bare = Median(() => Measure(packets, BareRun(key)));
        var openssl = OpenSslPacketsPerSecond(cancellationToken);

        Console.WriteLine($"Pinhole ProtectRtp:        {Format(protect)}");
        Console.WriteLine($"Pinhole TryUnprotectRtp:   {Format(unprotect)}");
        Console.WriteLine($".NET AES-ECB-ctr + HMAC:   {Format(bare)}");
        Console.WriteLine($"openssl aes-128-ctr + hmac: {(openssl is { } o ? Format(o) : "skipped")}");

        var md = new StringBuilder();
        md.Append("## srtp — SRTP protect/unprotect throughput\n\n");
        md.Append(CultureInfo.InvariantCulture, $"`dotnet run --project bench/Pinhole.Benchmarks -c Release -- --out docs/benchmarks.md srtp` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores (shared), .NET {Environment.Version}, {OpenSslVersion() ?? "no openssl"}.\n");
        md.Append(CultureInfo.InvariantCulture, $"AES_CM_128_HMAC_SHA1_80 on {PacketSize}-byte RTP packets (12-byte header, {PacketSize - HeaderSize}-byte payload), one thread, {packets:N0} packets per run, median of {Runs} runs; packets per CPU second of the process (the machine is shared with other builds, so wall time would measure them). ");
        md.Append("The peers do the same cryptographic work without SRTP's bookkeeping: .NET's AES-128 (ECB over the counter blocks, then XOR) plus HMAC-SHA1 over header, payload and ROC; and OpenSSL's `openssl speed -evp aes-128-ctr` and `-hmac sha1` at the same sizes, combined as 1 / (1/aes + 1/hmac).\n\n");
        md.Append("| | packets/s | MB/s of RTP | µs per packet |\n|---|---:|---:|---:|\n");
        Row(md, "Pinhole `SrtpSession.ProtectRtp`", protect);
        Row(md, "Pinhole `SrtpSession.TryUnprotectRtp`", unprotect);
        Row(md, "peer: .NET AES-ECB counter blocks + XOR + HMAC-SHA1", bare);
        if (openssl is { } rate) Row(md, "peer: OpenSSL aes-128-ctr + hmac(sha1)", rate);
        md.Append(CultureInfo.InvariantCulture, $"\nA 4 Mbit/s camera is about {4_000_000 / 8 / PacketSize} packets/s, so one viewer's SRTP costs roughly {100.0 * (4_000_000 / 8 / PacketSize) / protect:F2} % of one core at the protect rate above.\n");
        return Task.FromResult(md.ToString());
    }

    private static Action<int> ProtectRun(byte[] key, byte[] salt, byte[] rtp)
    {
        return count =>
        {
            using var session = new SrtpSession(key, salt);
            var packet = (byte[])rtp.Clone();
            var output = new byte[PacketSize + SrtpSession.AuthTagLength];
            for (var i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)i);
                session.ProtectRtp(packet, output);
            }
        };
    }

    private static Action<int> UnprotectRun(byte[] key, byte[] salt, byte[] rtp, int count)
    {
        // Protected once up front; the ring of 4096 distinct packets is replayed in fresh sessions so
        // every packet is new to the receiver's window.
        var ring = new byte[Math.Min(count, 4096)][];
        using (var sender = new SrtpSession(key, salt))
        {
            var packet = (byte[])rtp.Clone();
            for (var i = 0; i < ring.Length; i++)
            {
                BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)i);
                ring[i] = new byte[PacketSize + SrtpSession.AuthTagLength];
                sender.ProtectRtp(packet, ring[i]);
            }
        }
        return n =>
        {
            var output = new byte[PacketSize + SrtpSession.AuthTagLength];
            SrtpSession? receiver = null;
            try
            {
                for (var i = 0; i < n; i++)
                {
                    if (i % ring.Length == 0)
                    {
                        receiver?.Dispose();
                        receiver = new SrtpSession(key, salt);
                    }
                    if (!receiver!.TryUnprotectRtp(ring[i % ring.Length], output, out _)) throw new InvalidOperationException("unprotect failed");
                }
            }
            finally
            {
                receiver?.Dispose();
            }
        };
    }

    private static Action<int> BareRun(byte[] key)
    {
        return count =>
        {
            using var aes = Aes.Create();
            aes.Key = key;
            using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA1, RandomNumberGenerator.GetBytes(20));
            var payload = new byte[PacketSize];
            var blocks = (PacketSize - HeaderSize + 15) / 16 * 16;
            var counters = new byte[blocks];
            var stream = new byte[blocks];
            Span<byte> mac = stackalloc byte[20];
            Span<byte> roc = stackalloc byte[4];
            for (var i = 0; i < count; i++)
            {
                for (var j = 0; j < blocks / 16; j++) BinaryPrimitives.WriteUInt16BigEndian(counters.AsSpan(16 * j + 14), (ushort)j);
                aes.EncryptEcb(counters, stream, PaddingMode.None);
                for (var k = HeaderSize; k < PacketSize; k++) payload[k] ^= stream[k - HeaderSize];
                hmac.AppendData(payload);
                hmac.AppendData(roc);
                hmac.GetHashAndReset(mac);
            }
        };
    }

    private static double Measure(int packets, Action<int> run)
    {
        using var process = Process.GetCurrentProcess();
        var before = process.TotalProcessorTime;
        run(packets);
        process.Refresh();
        var cpu = (process.TotalProcessorTime - before).TotalSeconds;
        return packets / Math.Max(cpu, 1e-6);
    }

    private static double Median(Func<double> measure)
    {
        var values = Enumerable.Range(0, Runs).Select(_ => measure()).Order().ToArray();
        return values[Runs / 2];
    }

    private static double? OpenSslPacketsPerSecond(CancellationToken cancellationToken)
    {
        var aes = OpenSslBytesPerSecond(["speed", "-mr", "-seconds", "2", "-bytes", (PacketSize - HeaderSize).ToString(CultureInfo.InvariantCulture), "-evp", "aes-128-ctr"], cancellationToken);
        var hmac = OpenSslBytesPerSecond(["speed", "-mr", "-seconds", "2", "-bytes", (PacketSize + 4).ToString(CultureInfo.InvariantCulture), "-hmac", "sha1"], cancellationToken);
        if (aes is null || hmac is null) return null;
        // Per packet: one AES-CTR pass over the payload and one HMAC over header, payload and ROC.
        var seconds = (PacketSize - HeaderSize) / aes.Value + (PacketSize + 4) / hmac.Value;
        return 1 / seconds;
    }

    private static double? OpenSslBytesPerSecond(string[] args, CancellationToken cancellationToken)
    {
        var output = Run("openssl", args, cancellationToken);
        // -mr output: "+F:<n>:<algorithm>:<bytes per second>" for the one size asked.
        var line = output?.Split('\n').FirstOrDefault(l => l.StartsWith("+F:", StringComparison.Ordinal));
        return line is null ? null : double.Parse(line.Split(':')[^1], CultureInfo.InvariantCulture);
    }

    private static string? OpenSslVersion() => Run("openssl", ["version"], CancellationToken.None)?.Trim();

    private static string? Run(string program, string[] args, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            using var process = Process.Start(psi)!;
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            _ = process.StandardError.ReadToEndAsync(cancellationToken);
            process.WaitForExitAsync(cancellationToken).GetAwaiter().GetResult();
            return process.ExitCode == 0 ? stdout.GetAwaiter().GetResult() : null;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.Error.WriteLine($"{program} skipped: {e.Message}");
            return null;
        }
    }

    private static void Row(StringBuilder md, string name, double packetsPerSecond) =>
        md.Append(CultureInfo.InvariantCulture, $"| {name} | {packetsPerSecond:N0} | {packetsPerSecond * PacketSize / 1e6:N0} | {1e6 / packetsPerSecond:F2} |\n");

    private static string Format(double packetsPerSecond) =>
        string.Create(CultureInfo.InvariantCulture, $"{packetsPerSecond,12:N0} packets/s  {packetsPerSecond * PacketSize / 1e6,7:N0} MB/s  {1e6 / packetsPerSecond,6:F2} µs/packet");
}
