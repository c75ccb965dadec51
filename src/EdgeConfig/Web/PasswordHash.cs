using System.Security.Cryptography;
using System.Text;

namespace Pinhole.EdgeHost.Web;

/// <summary>
/// PBKDF2-SHA256 password hashes. <c>web.password</c> may hold the plain password (hashed in memory
/// at start-up, never kept) or a stored hash in the form <c>pbkdf2-sha256$ITERATIONS$SALT$HASH</c>
/// (base64), e.g. produced by <c>pinhole-edge hash-password</c>.
/// </summary>
public sealed class PasswordHash
{
    /// <summary>The marker of a stored hash.</summary>
    public const string Prefix = "pbkdf2-sha256$";

    /// <summary>Iterations for new hashes: ~50 ms on a Raspberry Pi 4, paid once per login attempt.</summary>
    public const int DefaultIterations = 100_000;

    private readonly int _iterations;
    private readonly byte[] _salt;
    private readonly byte[] _hash;

    private PasswordHash(int iterations, byte[] salt, byte[] hash)
    {
        _iterations = iterations;
        _salt = salt;
        _hash = hash;
    }

    /// <summary>Hashes a new password with a random salt.</summary>
    public static PasswordHash Create(string password, int iterations = DefaultIterations)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        return new PasswordHash(iterations, salt, Derive(password, salt, iterations));
    }

    /// <summary>Either parses a stored hash or hashes a plain password from the config.</summary>
    public static PasswordHash FromConfig(string value) =>
        value.StartsWith(Prefix, StringComparison.Ordinal) && TryParse(value, out var hash) ? hash : Create(value);

    /// <summary>Parses <c>pbkdf2-sha256$ITERATIONS$SALT$HASH</c>.</summary>
    public static bool TryParse(string value, out PasswordHash hash)
    {
        hash = null!;
        var parts = value.Split('$');
        if (parts.Length != 4 || parts[0] + "$" != Prefix) return false;
        if (!int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var iterations) ||
            iterations is < 1000 or > 10_000_000)
            return false;
        try
        {
            var salt = Convert.FromBase64String(parts[2]);
            var bytes = Convert.FromBase64String(parts[3]);
            if (salt.Length < 8 || bytes.Length != 32) return false;
            hash = new PasswordHash(iterations, salt, bytes);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>Constant-time comparison of a candidate password.</summary>
    public bool Verify(string candidate) =>
        CryptographicOperations.FixedTimeEquals(Derive(candidate, _salt, _iterations), _hash);

    /// <summary>The storable form.</summary>
    public override string ToString() =>
        $"{Prefix}{_iterations}${Convert.ToBase64String(_salt)}${Convert.ToBase64String(_hash)}";

    private static byte[] Derive(string password, byte[] salt, int iterations) =>
        Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, 32);
}
