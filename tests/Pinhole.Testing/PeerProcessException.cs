namespace Pinhole.Testing;

/// <summary>A peer did not start, did not become ready in time, or failed; the message carries its last output.</summary>
public sealed class PeerProcessException : Exception
{
    /// <summary>Creates the exception.</summary>
    public PeerProcessException()
    {
    }

    /// <summary>Creates the exception with a message.</summary>
    public PeerProcessException(string message) : base(message)
    {
    }

    /// <summary>Creates the exception with a message and its cause.</summary>
    public PeerProcessException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
