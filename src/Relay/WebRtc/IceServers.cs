using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Pinhole.Relay.Configuration;

namespace Pinhole.Relay.WebRtc;

/// <summary>
/// The <c>iceServers</c> a viewer's RTCPeerConnection gets. For a server with a shared secret the
/// credentials are minted per viewer in the TURN REST API form coturn checks with
/// <c>use-auth-secret</c>: user name <c>EXPIRY:USER</c> (Unix seconds), password
/// base64(HMAC-SHA1(secret, user name)).
/// </summary>
public static class IceServers
{
    /// <summary>The JSON array for <c>new RTCPeerConnection({ iceServers })</c>.</summary>
    public static JsonArray ForViewer(IReadOnlyList<IceServerConfig> servers, string user, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(servers);
        var list = new JsonArray();
        foreach (var s in servers)
        {
            var entry = new JsonObject { ["urls"] = new JsonArray([.. s.Urls.Select(u => (JsonNode)u)]) };
            if (s.Secret is not null)
            {
                var (name, password) = Mint(s.Secret, user, now + TimeSpan.FromSeconds(s.Ttl));
                entry["username"] = name;
                entry["credential"] = password;
            }
            else if (s.Username is not null)
            {
                entry["username"] = s.Username;
                entry["credential"] = s.Credential ?? "";
            }
            list.Add(entry);
        }
        return list;
    }

    /// <summary>TURN REST API credentials valid until <paramref name="expires"/>.</summary>
    public static (string Username, string Credential) Mint(string secret, string user, DateTimeOffset expires)
    {
        ArgumentNullException.ThrowIfNull(secret);
        ArgumentNullException.ThrowIfNull(user);
        // The user part must not contain ':' (the expiry separator); viewer names never do (config validation).
        var name = expires.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture) + ":" + user.Replace(':', '_');
        var mac = HMACSHA1.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes(name));
        return (name, Convert.ToBase64String(mac));
    }
}
