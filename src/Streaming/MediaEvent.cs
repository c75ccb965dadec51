using Pinhole.Transport.Media;

namespace Pinhole.Streaming;

/// <summary>What a viewer's queue delivers.</summary>
public enum MediaEventKind
{
    /// <summary>The stream's tracks (first event, and again whenever they change). Re-initialise the output.</summary>
    Tracks,

    /// <summary>One access unit.</summary>
    Frame,

    /// <summary>The device went offline; <see cref="MediaEventKind.Tracks"/> follows when it is back.</summary>
    Offline,

    /// <summary>The device's source restarted (the same tracks were announced again): from the next
    /// frame on, timestamps may start from a new origin. Frames before it still play.</summary>
    Restart,
}

/// <summary>One item in a viewer's queue.</summary>
/// <param name="Kind">What this is.</param>
/// <param name="Tracks">For <see cref="MediaEventKind.Tracks"/>: the tracks.</param>
/// <param name="Unit">For <see cref="MediaEventKind.Frame"/>: the access unit.</param>
public readonly record struct MediaEvent(MediaEventKind Kind, IReadOnlyList<TrackInfo>? Tracks, AccessUnit Unit)
{
    internal static MediaEvent ForTracks(IReadOnlyList<TrackInfo> tracks) => new(MediaEventKind.Tracks, tracks, default);
    internal static MediaEvent ForFrame(in AccessUnit unit) => new(MediaEventKind.Frame, null, unit);
    internal static readonly MediaEvent OfflineEvent = new(MediaEventKind.Offline, null, default);
    internal static readonly MediaEvent RestartEvent = new(MediaEventKind.Restart, null, default);
}
