using System.Collections;

namespace Pinhole.Transport.Rtsp;

/// <summary>
/// The header fields of one RTSP message, in wire order. Names compare case-insensitively
/// (RFC 2326 §4.2 follows HTTP/1.1 §4.2); a name may repeat.
/// </summary>
public sealed class RtspHeaders : IEnumerable<KeyValuePair<string, string>>
{
    private readonly List<KeyValuePair<string, string>> _fields = [];

    /// <summary>Number of header lines.</summary>
    public int Count => _fields.Count;

    /// <summary>The first value of <paramref name="name"/>, or null. Setting replaces every value.</summary>
    public string? this[string name]
    {
        get
        {
            foreach (var f in _fields)
                if (string.Equals(f.Key, name, StringComparison.OrdinalIgnoreCase)) return f.Value;
            return null;
        }
        set
        {
            Remove(name);
            if (value is not null) Add(name, value);
        }
    }

    /// <summary>Appends a field (keeps earlier ones with the same name).</summary>
    public void Add(string name, string value)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(value);
        if (name.AsSpan().IndexOfAny(":\r\n") >= 0 || value.AsSpan().IndexOfAny("\r\n") >= 0)
            throw new ArgumentException($"header '{name}' contains a line break or colon in its name");
        _fields.Add(new(name, value));
    }

    /// <summary>Every value of <paramref name="name"/>, in order.</summary>
    public IEnumerable<string> GetValues(string name) =>
        _fields.Where(f => string.Equals(f.Key, name, StringComparison.OrdinalIgnoreCase)).Select(f => f.Value);

    /// <summary>Removes every field called <paramref name="name"/>; true when one existed.</summary>
    public bool Remove(string name) => _fields.RemoveAll(f => string.Equals(f.Key, name, StringComparison.OrdinalIgnoreCase)) > 0;

    /// <summary>True when a field called <paramref name="name"/> exists.</summary>
    public bool Contains(string name) => this[name] is not null;

    /// <inheritdoc />
    public IEnumerator<KeyValuePair<string, string>> GetEnumerator() => _fields.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
