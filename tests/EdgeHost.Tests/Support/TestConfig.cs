namespace Pinhole.EdgeHost.Tests.Support;

/// <summary>edge.json texts for tests, written into a temp directory that is deleted afterwards.</summary>
public sealed class TempConfigDir : IDisposable
{
    public TempConfigDir()
    {
        Path = Directory.CreateTempSubdirectory("pinhole-edge-test-").FullName;
    }

    public string Path { get; }

    public string Write(string json, string name = "edge.json")
    {
        var file = System.IO.Path.Combine(Path, name);
        File.WriteAllText(file, json);
        return file;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
    }

    public const string Password = "correct horse battery staple";

    /// <summary>One camera, two sensors, MQTT, page on a free loopback port.</summary>
    public static string Sample(string listen = "http://127.0.0.1:0") => $$"""
        {
          "deviceId": "gw1",
          "token": "a-long-random-secret",
          "relays": [ "wss://relay.example.com/uplink", "wss://relay2.example.com/uplink" ],
          "cameras": [
            { "name": "door", "source": "rtsp://user:pass@192.168.1.64:554/stream1" },
            { "name": "pi", "source": "exec:rpicam-vid -t 0 --inline --codec h264 -o -" }
          ],
          "sensors": [
            { "name": "cpu_temp", "kind": "file", "path": "/sys/class/thermal/thermal_zone0/temp",
              "scale": 0.001, "unit": "°C", "interval": "5s" },
            { "name": "door_contact", "kind": "gpio", "chip": "/dev/gpiochip0", "line": 17,
              "edge": "both", "debounce": "20ms" }
          ],
          "mqtt": { "url": "wss://broker.example.com:8884/mqtt", "username": "gw1", "password": "mqtt-secret",
                    "topicPrefix": "pinhole" },
          "web": { "listen": "{{listen}}", "password": "{{Password}}" },
          "dataDir": "./data"
        }
        """;

    /// <summary>
    /// <see cref="Sample"/> with every camera, relay and broker on a closed loopback port, for tests
    /// that run the real pipelines: they fail to connect and retry, and no packet (not even a DNS
    /// query) leaves the machine.
    /// </summary>
    public static string LoopbackSample(string listen = "http://127.0.0.1:0")
    {
        var closed = Pinhole.Testing.FreePort.Get();
        return Sample(listen)
            .Replace("wss://relay.example.com/uplink", $"ws://127.0.0.1:{closed}/uplink", StringComparison.Ordinal)
            .Replace("wss://relay2.example.com/uplink", $"ws://127.0.0.1:{closed}/uplink2", StringComparison.Ordinal)
            .Replace("192.168.1.64:554", $"127.0.0.1:{closed}", StringComparison.Ordinal)
            .Replace("wss://broker.example.com:8884/mqtt", $"ws://127.0.0.1:{closed}/mqtt", StringComparison.Ordinal);
    }
}
