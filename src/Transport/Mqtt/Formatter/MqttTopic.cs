namespace Pinhole.Transport.Mqtt.Formatter;

/// <summary>Topic name and topic filter rules (MQTT 5.0 section 4.7).</summary>
public static class MqttTopic
{
    /// <summary>
    /// A topic name (what PUBLISH carries) is at least one character and has no wildcards
    /// [MQTT-4.7.3-1], [MQTT-3.3.2-2].
    /// </summary>
    public static bool IsValidTopicName(string topic)
    {
        ArgumentNullException.ThrowIfNull(topic);
        return topic.Length > 0 && topic.AsSpan().IndexOfAny('+', '#') < 0 && topic.AsSpan().IndexOf('\0') < 0;
    }

    /// <summary>
    /// A topic filter (what SUBSCRIBE carries) is at least one character; '#' must be a whole level and
    /// the last one [MQTT-4.7.1-1]; '+' must be a whole level [MQTT-4.7.1-2].
    /// </summary>
    public static bool IsValidTopicFilter(string filter)
    {
        ArgumentNullException.ThrowIfNull(filter);
        if (filter.Length == 0 || filter.AsSpan().IndexOf('\0') >= 0)
            return false;
        for (var i = 0; i < filter.Length; i++)
        {
            var c = filter[i];
            if (c != '+' && c != '#')
                continue;
            var startsLevel = i == 0 || filter[i - 1] == '/';
            var endsLevel = i == filter.Length - 1 || filter[i + 1] == '/';
            if (!startsLevel || !endsLevel)
                return false;
            if (c == '#' && i != filter.Length - 1)
                return false;
        }

        return true;
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="topic"/> is a valid topic name.</summary>
    public static void ValidateTopicName(string topic)
    {
        if (!IsValidTopicName(topic))
            throw new ArgumentException($"'{topic}' is not a valid MQTT topic name (empty, or contains '+', '#' or U+0000)", nameof(topic));
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="filter"/> is a valid topic filter.</summary>
    public static void ValidateTopicFilter(string filter)
    {
        if (!IsValidTopicFilter(filter))
            throw new ArgumentException($"'{filter}' is not a valid MQTT topic filter ('#' and '+' must fill a whole level, '#' only last)", nameof(filter));
    }
}
