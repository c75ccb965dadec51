namespace Pinhole.EdgeHost.Configuration;

/// <summary>One reading a sensor publishes: its topic name, unit and Home Assistant device class.</summary>
/// <param name="Name">The topic level under <c>sensors/</c>: the sensor's name, or <c>NAME_QUANTITY</c> for a chip.</param>
/// <param name="Unit">Unit of the values; empty when unitless.</param>
/// <param name="DeviceClass">Home Assistant's <c>device_class</c>; null to let it guess from the unit.</param>
public sealed record SensorReadingInfo(string Name, string Unit, string? DeviceClass)
{
    /// <summary>A reading with no device class of its own (Home Assistant's is guessed from the unit), as <c>(name, unit)</c>.</summary>
    public static implicit operator SensorReadingInfo((string Name, string Unit) reading) => new(reading.Name, reading.Unit, null);
}

/// <summary>
/// The sensor kinds of edge.json and what each publishes. <c>file</c> and <c>gpio</c> publish one
/// reading under the sensor's name; a chip publishes one reading per quantity it measures, named
/// <c>NAME_QUANTITY</c> (a BME280 named <c>room</c>: <c>room_temperature</c>, <c>room_humidity</c>,
/// <c>room_pressure</c>), so every reading is one topic <c>PREFIX/DEVICE/sensors/READING</c> with one unit.
/// </summary>
public static class SensorKinds
{
    /// <summary>Quantities: temperature °C, relative humidity %, pressure hPa, voltage V.</summary>
    private static readonly (string Quantity, string Unit, string DeviceClass) Temperature = ("temperature", "°C", "temperature");
    private static readonly (string Quantity, string Unit, string DeviceClass) Humidity = ("humidity", "%", "humidity");
    private static readonly (string Quantity, string Unit, string DeviceClass) Pressure = ("pressure", "hPa", "pressure");

    private static readonly Dictionary<string, (string Quantity, string Unit, string DeviceClass)[]> Chips = new(StringComparer.Ordinal)
    {
        ["bme280"] = [Temperature, Humidity, Pressure],
        ["bmp280"] = [Temperature, Pressure],
        ["sht3x"] = [Temperature, Humidity],
        ["dht22"] = [Temperature, Humidity],
        ["ads1115"] = [("a0", "V", "voltage"), ("a1", "V", "voltage"), ("a2", "V", "voltage"), ("a3", "V", "voltage")],
        ["ds18b20"] = [Temperature],
    };

    /// <summary>Every kind, in the order error messages list them.</summary>
    public static IReadOnlyList<string> All { get; } = ["file", "gpio", "bme280", "bmp280", "sht3x", "dht22", "ads1115", "ds18b20"];

    /// <summary>Chips on I2C, with the addresses each can be strapped to (the first is the default).</summary>
    public static IReadOnlyDictionary<string, int[]> I2cAddresses { get; } = new Dictionary<string, int[]>(StringComparer.Ordinal)
    {
        ["bme280"] = [0x76, 0x77],
        ["bmp280"] = [0x76, 0x77],
        ["sht3x"] = [0x44, 0x45],
        ["ads1115"] = [0x48, 0x49, 0x4A, 0x4B],
    };

    /// <summary>Whether <paramref name="kind"/> is a chip that publishes one reading per quantity.</summary>
    public static bool IsChip(string kind) => Chips.ContainsKey(kind);

    /// <summary>The quantities a chip kind measures, in the order its driver returns them (empty for file and gpio).</summary>
    public static IReadOnlyList<string> QuantitiesOf(string kind) =>
        Chips.TryGetValue(kind, out var q) ? [.. q.Select(x => x.Quantity)] : [];

    /// <summary>What a sensor publishes.</summary>
    public static IReadOnlyList<SensorReadingInfo> ReadingsOf(SensorConfig sensor)
    {
        ArgumentNullException.ThrowIfNull(sensor);
        if (Chips.TryGetValue(sensor.Kind, out var quantities))
            return [.. quantities.Select(q => new SensorReadingInfo($"{sensor.Name}_{q.Quantity}", q.Unit, q.DeviceClass))];
        return [new SensorReadingInfo(sensor.Name, sensor.Unit ?? "", null)];
    }

    /// <summary>Parses <c>"0x76"</c> (or decimal <c>"118"</c>) as a 7-bit I2C address.</summary>
    public static bool TryParseI2cAddress(string? text, out int address)
    {
        address = 0;
        if (string.IsNullOrEmpty(text)) return false;
        var ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? int.TryParse(text.AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture, out address)
            : int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out address);
        return ok && address is >= 0x03 and <= 0x77;
    }

    /// <summary>A 1-Wire thermometer id as the kernel names it: family 28 (DS18B20), a dash, 12 hex digits.</summary>
    public static bool IsW1ThermometerId(string? text) =>
        text is { Length: 15 } && text.StartsWith("28-", StringComparison.Ordinal) && text.AsSpan(3).ContainsOnlyHex();
}

file static class SpanHex
{
    public static bool ContainsOnlyHex(this ReadOnlySpan<char> s)
    {
        foreach (var c in s)
            if (!char.IsAsciiHexDigitLower(c) && !char.IsAsciiDigit(c)) return false;
        return true;
    }
}
