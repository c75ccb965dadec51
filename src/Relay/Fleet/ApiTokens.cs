using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Pinhole.Relay.Fleet;

/// <summary>
/// API tokens for scripts (<c>Authorization: Bearer TOKEN</c> on <c>/api/*</c>). A token is 32 random
/// bytes, so a plain SHA-256 of it is enough to store (nothing to brute-force, unlike a password)
/// and lets a request be checked with one indexed lookup.
/// </summary>
public static partial class ApiTokens
{
    /// <summary>Every API token starts with this, so a leaked one is easy to recognise (and to grep for).</summary>
    public const string Prefix = "pht_";

    /// <summary>Names: 1-64 of <c>A-Z a-z 0-9 . _ -</c>.</summary>
    public static bool IsValidName(string name) => NamePattern().IsMatch(name);

    /// <summary>Creates a token named <paramref name="name"/> and returns it (shown once).</summary>
    /// <exception cref="InvalidOperationException">The name is invalid or taken.</exception>
    public static string Create(IFleetStore store, string name, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (!IsValidName(name)) throw new InvalidOperationException($"token name \"{name}\" must be 1-64 letters, digits, '.', '-' or '_'");
        var token = Prefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        if (!store.AddApiToken(name, Hash(token), now)) throw new InvalidOperationException($"a token named \"{name}\" already exists");
        return token;
    }

    /// <summary>The name of the token, or null when it is not one of ours.</summary>
    public static string? Authenticate(IFleetStore store, string token)
    {
        ArgumentNullException.ThrowIfNull(store);
        if (!token.StartsWith(Prefix, StringComparison.Ordinal) || token.Length > 200) return null;
        return store.FindApiToken(Hash(token));
    }

    private static byte[] Hash(string token) => SHA256.HashData(Encoding.UTF8.GetBytes(token));

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex NamePattern();
}
