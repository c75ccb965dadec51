using Pinhole.Transport.Media;

namespace Pinhole.EdgeHost.Uplink;

/// <summary>Where one camera's pipeline writes: tracks and access units go into the client's send queue, and a frame
/// queued is sent at once from the camera's thread when the link takes it.</summary>
internal sealed class UplinkCameraSink(UplinkClient client, CameraQueue camera) : IMediaSink
{
    public void OnTracks(IReadOnlyList<TrackInfo> tracks) => client.SendQueue.SetTracks(camera, tracks);

    public void OnAccessUnit(in AccessUnit unit)
    {
        if (client.SendQueue.EnqueueQuietly(camera, unit)) client.SendInlineOrWake();
    }
}
