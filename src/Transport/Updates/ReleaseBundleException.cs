namespace Pinhole.Transport.Updates;

/// <summary>A release bundle that is malformed, not signed by the trusted key, tampered with, or not for this device.
/// The message is one line, safe to log and to report to the relay.</summary>
public sealed class ReleaseBundleException : Exception
{
    /// <summary>Creates the exception.</summary>
    public ReleaseBundleException() : base("invalid release bundle") { }

    /// <summary>Creates the exception with a reason.</summary>
    public ReleaseBundleException(string message) : base(message) { }

    /// <summary>Creates the exception with a reason and a cause.</summary>
    public ReleaseBundleException(string message, Exception innerException) : base(message, innerException) { }
}
