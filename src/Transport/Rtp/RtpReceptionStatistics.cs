namespace Pinhole.Transport.Rtp;

/// <summary>
/// What a receiver counts about one RTP source to fill an RTCP reception report block
/// (RFC 3550 §6.4.1, §A.3): extended highest sequence number, packets lost, and the LSR/DLSR pair
/// from the last sender report. Jitter is reported as 0 (Pinhole does not use it). Not thread-safe.
/// </summary>
internal sealed class RtpReceptionStatistics
{
    private bool _started;
    private ushort _maxSequence;
    private uint _cycles;
    private uint _baseSequence;
    private long _received;
    private long _expectedPrior, _receivedPrior;
    private uint _lastSr;
    private long _lastSrTimestamp;

    /// <summary>SSRC of the source, once a packet has arrived.</summary>
    public uint? Ssrc { get; private set; }

    /// <summary>Counts one received packet.</summary>
    public void OnRtp(RtpPacket packet)
    {
        ArgumentNullException.ThrowIfNull(packet);
        if (!_started || Ssrc != packet.Ssrc)
        {
            _started = true;
            Ssrc = packet.Ssrc;
            _maxSequence = packet.SequenceNumber;
            _baseSequence = packet.SequenceNumber;
            _cycles = 0;
            _received = _expectedPrior = _receivedPrior = 0;
        }
        else if ((ushort)(packet.SequenceNumber - _maxSequence) is > 0 and < 0x8000)
        {
            if (packet.SequenceNumber < _maxSequence) _cycles += 1u << 16; // wrapped forward
            _maxSequence = packet.SequenceNumber;
        }
        _received++;
    }

    /// <summary>Remembers a sender report of this source (its NTP time goes back as LSR).</summary>
    public void OnSenderReport(RtcpPacket report, long receivedTimestamp)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (report.PacketType != RtcpPacket.SenderReportType || report.Ssrc != Ssrc) return;
        _lastSr = (uint)(report.NtpTimestamp >> 16); // middle 32 bits (§6.4.1 LSR)
        _lastSrTimestamp = receivedTimestamp;
    }

    /// <summary>A report block for now, or null before the first packet.</summary>
    public RtcpReportBlock? CreateReport(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        if (Ssrc is not { } ssrc) return null;
        var extendedMax = _cycles + _maxSequence;
        var expected = (long)extendedMax - _baseSequence + 1;
        var lost = Math.Clamp(expected - _received, -0x800000, 0x7fffff);
        // §A.3: fraction lost over the interval since the previous report.
        var expectedInterval = expected - _expectedPrior;
        var lostInterval = expectedInterval - (_received - _receivedPrior);
        _expectedPrior = expected;
        _receivedPrior = _received;
        var fraction = expectedInterval == 0 || lostInterval <= 0 ? (byte)0 : (byte)Math.Min(255, (lostInterval << 8) / expectedInterval);
        uint dlsr = 0;
        if (_lastSr != 0) dlsr = (uint)Math.Min(uint.MaxValue, time.GetElapsedTime(_lastSrTimestamp).TotalSeconds * 65536);
        return new RtcpReportBlock(ssrc, fraction, (int)lost, extendedMax, 0, _lastSr, dlsr);
    }
}
