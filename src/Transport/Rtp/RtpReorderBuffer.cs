namespace Pinhole.Transport.Rtp;

/// <summary>
/// Puts UDP-delivered RTP packets of one SSRC back in sequence-number order (16-bit wrap, RFC 3550
/// §A.1) within a small window. A missing packet is waited for until the window is full, then
/// skipped (the depacketizer sees the gap). Duplicates and packets older than what was already
/// released are dropped. Not thread-safe.
/// </summary>
internal sealed class RtpReorderBuffer
{
    private readonly RtpPacket?[] _slots;
    private ushort _next;
    private bool _started;
    private int _count;

    /// <summary>Creates a buffer that holds at most <paramref name="window"/> packets (a power of two).</summary>
    public RtpReorderBuffer(int window = 32)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(window, 4096);
        // A power of two divides 65536, so slot indexes stay consistent across the 16-bit wrap.
        if (!System.Numerics.BitOperations.IsPow2(window)) throw new ArgumentException("window must be a power of two", nameof(window));
        _slots = new RtpPacket?[window];
    }

    /// <summary>Packets dropped as duplicates or too late.</summary>
    public long Dropped { get; private set; }

    /// <summary>Sequence numbers skipped because they never arrived within the window.</summary>
    public long Lost { get; private set; }

    /// <summary>Adds a packet; appends to <paramref name="ready"/> every packet now in order.</summary>
    public void Push(RtpPacket packet, List<RtpPacket> ready)
    {
        ArgumentNullException.ThrowIfNull(packet);
        ArgumentNullException.ThrowIfNull(ready);
        if (!_started)
        {
            _started = true;
            _next = packet.SequenceNumber;
        }
        var delta = (short)(packet.SequenceNumber - _next); // signed distance with wrap
        if (delta < 0)
        {
            // Far behind means the sender restarted its sequence: resynchronize instead of dropping forever.
            if (delta < -_slots.Length * 4 && _count == 0) { _next = packet.SequenceNumber; delta = 0; }
            else { Dropped++; return; }
        }
        while (delta >= _slots.Length)
        {
            // The window is full: give up on the oldest missing packet(s).
            if (_count == 0)
            {
                Lost += delta;
                _next = packet.SequenceNumber;
                delta = 0;
                break;
            }
            SkipHead(ready);
            delta = (short)(packet.SequenceNumber - _next);
        }
        var index = packet.SequenceNumber % _slots.Length;
        if (_slots[index] is not null) { Dropped++; return; }
        _slots[index] = packet;
        _count++;
        ReleaseInOrder(ready);
    }

    /// <summary>Releases everything held, in order, skipping gaps (e.g. at end of stream).</summary>
    public void Flush(List<RtpPacket> ready)
    {
        ArgumentNullException.ThrowIfNull(ready);
        while (_count > 0) SkipHead(ready);
    }

    private void SkipHead(List<RtpPacket> ready)
    {
        if (_slots[_next % _slots.Length] is null)
        {
            _next++;
            Lost++;
        }
        ReleaseInOrder(ready);
    }

    private void ReleaseInOrder(List<RtpPacket> ready)
    {
        while (_slots[_next % _slots.Length] is { } p)
        {
            _slots[_next % _slots.Length] = null;
            _count--;
            ready.Add(p);
            _next++;
        }
    }
}

/// <summary>Extends 32-bit RTP timestamps to 64 bits across wraps (RFC 3550 §5.1 allows wrap at any point).</summary>
internal sealed class RtpTimestampUnwrapper
{
    private long _last;
    private bool _started;

    /// <summary>The 64-bit timestamp for <paramref name="timestamp"/>; steps back (reordering) are allowed.</summary>
    public long Unwrap(uint timestamp)
    {
        if (!_started)
        {
            _started = true;
            _last = timestamp;
            return _last;
        }
        var delta = (int)(timestamp - (uint)_last); // signed 32-bit distance
        _last += delta;
        return _last;
    }
}
