using Pinhole.Streaming.Rtsp;
using Pinhole.Transport.Security;

namespace Pinhole.Relay.Rtsp;

/// <summary>The relay's one <see cref="LoginThrottle"/> as the RTSP server sees it, so RTSP guesses and web-form
/// guesses at a user are counted together.</summary>
internal sealed class RtspLoginThrottle(LoginThrottle throttle) : IRtspLoginThrottle
{
    public TimeSpan RetryAfter(string clientAddress, string user) => throttle.RetryAfter(clientAddress, user);

    public void Failed(string clientAddress, string user) => throttle.Failed(clientAddress, user);

    public void Succeeded(string clientAddress, string user) => throttle.Succeeded(clientAddress, user);
}
