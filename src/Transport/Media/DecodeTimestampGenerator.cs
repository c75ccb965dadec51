namespace Pinhole.Transport.Media;

/// <summary>
/// Derives decode timestamps (DTS) for the access units of one video track from their presentation
/// timestamps (PTS), which RTP carries (RFC 6184 §5.1, RFC 7798 §4.1) in decode order, with no added
/// latency. With B-frames the PTS come out of order (I0 P3 B1 B2 …) while a DTS must never go back
/// and never pass the PTS of its own or of any later frame.
/// </summary>
/// <remarks>
/// <para>The method is FFmpeg's (libavformat <c>compute_pkt_fields</c>, its <c>pts_buffer</c>): with
/// a reorder depth of <c>n</c> (H.264 <c>max_num_reorder_frames</c>, H.265
/// <c>sps_max_num_reorder_pics</c>) at most <c>n</c> frames decoded before a frame are shown after
/// it, so no later frame can have a PTS below the smallest of the <c>n + 1</c> largest PTS seen so
/// far. That smallest value is the DTS: never above the PTS, never decreasing. Until
/// <c>n + 1</c> frames were seen the missing ones are extrapolated one frame interval apart, and a
/// DTS is kept strictly increasing.</para>
/// <para>A depth of 0 (no B-frames, most cameras) gives DTS = PTS exactly. When a frame shows a
/// deeper reorder than assumed the depth grows to it. A guessed depth (no value in the SPS) shrinks
/// to 0 once a whole GOP went by without any reorder. A PTS jump of more than 10 s either way (a
/// source that restarted its clock) starts over.</para>
/// </remarks>
internal sealed class DecodeTimestampGenerator
{
    /// <summary>Deepest reorder followed (H.264 and H.265 allow at most 16 frames in the DPB).</summary>
    public const int MaxReorderDepth = 16;

    private const long MaxJumpSeconds = 10;

    private readonly long _frameTicks;
    private readonly long _maxJump;
    // The (depth + 1) largest PTS seen since the last reset, ascending: _largest[0] is the DTS.
    private readonly long[] _largest = new long[MaxReorderDepth + 1];
    private int _largestCount;
    // The latest PTS in decode order (a ring), to see how many frames a new one was reordered behind.
    private readonly long[] _recent = new long[MaxReorderDepth + 1];
    private int _recentCount, _recentNext;
    private bool _started;
    private long _lastPts, _lastDts;
    private bool _guessed;
    private bool _seenKeyframe, _gopWithoutReorder;

    /// <summary>Creates a generator for a track with clock rate <paramref name="clockRate"/> (90 000 for video).</summary>
    public DecodeTimestampGenerator(int clockRate)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(clockRate);
        // One frame at 25 fps: only used to extrapolate the first frames, before n + 1 were seen.
        _frameTicks = Math.Max(1, clockRate / 25);
        _maxJump = MaxJumpSeconds * clockRate;
    }

    /// <summary>The reorder depth in use: frames that may be decoded before a frame and shown after it.</summary>
    public int ReorderDepth { get; private set; }

    /// <summary>Sets the reorder depth from a new SPS.</summary>
    /// <param name="depth">max_num_reorder_frames / sps_max_num_reorder_pics, or a guess.</param>
    /// <param name="guessed">True when the SPS did not say (the depth then shrinks to 0 after a GOP without reorder).</param>
    public void SetReorderDepth(int depth, bool guessed)
    {
        ReorderDepth = Math.Clamp(depth, 0, MaxReorderDepth);
        _guessed = guessed && ReorderDepth > 0;
        _seenKeyframe = false;
        KeepLargest(ReorderDepth + 1);
    }

    /// <summary>The DTS for the next access unit in decode order.</summary>
    /// <param name="pts">Its presentation timestamp.</param>
    /// <param name="keyframe">True for a random access point (where a GOP without reorder is counted).</param>
    public long Next(long pts, bool keyframe)
    {
        if (_started && Math.Abs(pts - _lastPts) > _maxJump)
        {
            // The source restarted its clock: nothing before says anything about what follows.
            _largestCount = _recentCount = _recentNext = 0;
            _started = false;
        }

        var reordered = 0;
        for (var i = 0; i < _recentCount; i++)
            if (_recent[i] > pts) reordered++;
        if (reordered > ReorderDepth)
        {
            // A deeper reorder than the SPS (or the guess) said: follow what the stream does.
            ReorderDepth = Math.Min(reordered, MaxReorderDepth);
            _guessed = false;
        }
        if (reordered > 0) _gopWithoutReorder = false;
        if (keyframe)
        {
            if (_guessed && _seenKeyframe && _gopWithoutReorder)
            {
                // A whole GOP without a single reordered frame: the guess was wrong, there are no B-frames.
                ReorderDepth = 0;
                _guessed = false;
                KeepLargest(1);
            }
            _seenKeyframe = true;
            _gopWithoutReorder = true;
        }
        _recent[_recentNext] = pts;
        _recentNext = (_recentNext + 1) % _recent.Length;
        _recentCount = Math.Min(_recentCount + 1, _recent.Length);

        var capacity = ReorderDepth + 1;
        if (_largestCount < capacity) Insert(pts);
        else if (pts > _largest[0])
        {
            _largestCount--;
            Array.Copy(_largest, 1, _largest, 0, _largestCount);
            Insert(pts);
        }

        long dts;
        if (ReorderDepth == 0)
        {
            // No B-frames: the decode order is the presentation order.
            dts = pts;
        }
        else
        {
            // Frames before the first one would have been one frame interval apart.
            dts = _largest[0] - (capacity - _largestCount) * _frameTicks;
            if (_started && dts <= _lastDts) dts = _lastDts + 1;
        }
        _started = true;
        _lastPts = pts;
        _lastDts = dts;
        return dts;
    }

    private void Insert(long pts)
    {
        var i = _largestCount++;
        while (i > 0 && _largest[i - 1] > pts)
        {
            _largest[i] = _largest[i - 1];
            i--;
        }
        _largest[i] = pts;
    }

    // Keeps the `count` largest values (the buffer is ascending, so the last ones).
    private void KeepLargest(int count)
    {
        if (_largestCount <= count) return;
        Array.Copy(_largest, _largestCount - count, _largest, 0, count);
        _largestCount = count;
    }
}
