using System.Text.Json;
using System.Text.Json.Nodes;

namespace Pinhole.EdgeHost.Configuration;

/// <summary>
/// The remotely managed part of edge.json: the document an admin stores on the relay
/// (<c>PUT /api/devices/ID/config</c>) and the relay pushes to the device. It may hold
/// <c>cameras</c>, <c>sensors</c>, <c>mqtt</c> and <c>relays</c>; never <c>deviceId</c>, <c>token</c>,
/// <c>web</c>, <c>dataDir</c>, <c>trustedCa</c>, <c>proxy</c> or <c>fleet</c>, which stay the device's own.
/// <c>cameras</c>, <c>sensors</c> and <c>mqtt</c> are always managed (left out means none);
/// <c>relays</c> only when given (the device's connectivity guard undoes a list it cannot reach).
/// Validation is <see cref="EdgeConfigLoader"/>'s, the rules of <c>pinhole-edge check-config</c>, run on
/// the document placed into an otherwise valid edge.json, so the relay and the device agree line for line.
/// </summary>
public static class ManagedConfig
{
    /// <summary>Largest document, in UTF-8 bytes (what fits one uplink config message).</summary>
    public const int MaxBytes = 256 * 1024;

    /// <summary>The top-level keys a managed document may hold.</summary>
    public static readonly IReadOnlyList<string> Keys = ["cameras", "sensors", "mqtt", "relays"];

    /// <summary>The sections a managed document always replaces (absent means removed).</summary>
    public static readonly IReadOnlyList<string> AlwaysManaged = ["cameras", "sensors", "mqtt"];

    private static readonly JsonDocumentOptions DocumentOptions = new() { CommentHandling = JsonCommentHandling.Skip, MaxDepth = 16 };

    /// <summary>
    /// Parses and validates a managed document. Returns every problem (empty when valid), each with its
    /// JSON path as <c>check-config</c> prints it; <paramref name="document"/> is the parsed object when valid.
    /// Never throws for bad input.
    /// </summary>
    public static IReadOnlyList<ConfigProblem> Validate(string json, out JsonObject? document)
    {
        ArgumentNullException.ThrowIfNull(json);
        document = null;
        if (System.Text.Encoding.UTF8.GetByteCount(json) > MaxBytes)
            return [new ConfigProblem("", $"the document is larger than {MaxBytes} bytes")];
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: DocumentOptions);
        }
        catch (JsonException e)
        {
            return [new ConfigProblem("", $"invalid JSON at line {(e.LineNumber ?? 0) + 1}, column {(e.BytePositionInLine ?? 0) + 1}")];
        }
        if (node is not JsonObject o)
            return [new ConfigProblem("", "expected a JSON object with cameras, sensors, mqtt and optionally relays")];

        var problems = new List<ConfigProblem>();
        var full = new JsonObject
        {
            ["deviceId"] = "managed-config-check",
            ["token"] = "managed-config-check",
            ["relays"] = new JsonArray("wss://relay.invalid/uplink"),
        };
        foreach (var (key, value) in o)
        {
            if (!Keys.Contains(key))
            {
                problems.Add(new ConfigProblem(key, $"cannot be managed from the relay (only {string.Join(", ", Keys)}); it stays as set on the device"));
                continue;
            }
            full[key] = value?.DeepClone();
        }
        var result = EdgeConfigLoader.Parse(full.ToJsonString());
        problems.AddRange(result.Problems);
        if (problems.Count == 0) document = o;
        return problems;
    }

    /// <summary>
    /// The edge.json sections a valid managed document sets, in the form of the local page's save
    /// (<c>null</c> removes a section): the always-managed ones, and <c>relays</c> when given.
    /// </summary>
    public static JsonObject ToSections(JsonObject document)
    {
        ArgumentNullException.ThrowIfNull(document);
        var sections = new JsonObject();
        foreach (var key in AlwaysManaged)
            sections[key] = document[key]?.DeepClone();
        if (document["relays"] is { } relays) sections["relays"] = relays.DeepClone();
        return sections;
    }
}
