using System.Text.Json.Nodes;
using Pinhole.EdgeHost.Configuration;
using Pinhole.EdgeHost.Tests.Support;

namespace Pinhole.EdgeHost.Tests.Configuration;

public class EdgeConfigLoaderTests
{
    private const string Minimal = """
        { "deviceId": "gw1", "token": "a-long-random-secret", "relays": [ "wss://relay.example.com/uplink" ] }
        """;

    [Fact]
    public void The_interface_example_loads_with_its_values()
    {
        var result = EdgeConfigLoader.Parse(TempConfigDir.Sample("http://0.0.0.0:8081"), "/etc/pinhole");
        Assert.Empty(result.Problems);
        var c = result.Config!;
        Assert.Equal("gw1", c.DeviceId);
        Assert.Equal(["wss://relay.example.com/uplink", "wss://relay2.example.com/uplink"], c.Relays);
        Assert.Equal(["door", "pi"], c.Cameras.Select(x => x.Name));
        Assert.Equal("exec:rpicam-vid -t 0 --inline --codec h264 -o -", c.Cameras[1].Source);
        Assert.Equal(0.001, c.Sensors[0].Scale);
        Assert.Equal("°C", c.Sensors[0].Unit);
        Assert.Equal(17, c.Sensors[1].Line);
        Assert.Equal("wss://broker.example.com:8884/mqtt", c.Mqtt!.Url);
        Assert.Equal("/etc/pinhole/data", c.DataDir);
        Assert.Null(c.Proxy);
        Assert.Equal("http://proxy.lan:3128", EdgeConfigLoader.Parse(Set(Minimal, "proxy", "\"http://proxy.lan:3128\"")).Config!.Proxy);
    }

    [Fact]
    public void Defaults_are_filled_in_for_a_minimal_config()
    {
        var c = EdgeConfigLoader.Parse(Minimal).Config!;
        Assert.Empty(c.Cameras);
        Assert.Empty(c.Sensors);
        Assert.Null(c.Mqtt);
        Assert.Equal("http://0.0.0.0:8081", c.Web.Listen);
        Assert.Null(c.Web.Password);
        Assert.Equal("/var/lib/pinhole", c.DataDir);

        var s = EdgeConfigLoader.Parse(With(Minimal, o =>
        {
            o["sensors"] = JsonNode.Parse("""[ { "name": "t", "kind": "file", "path": "/x" }, { "name": "g", "kind": "gpio", "chip": "/dev/gpiochip0", "line": 4 } ]""");
            o["mqtt"] = JsonNode.Parse("""{ "url": "mqtt://broker:1883" }""");
        })).Config!;
        Assert.Equal("5s", s.Sensors[0].Interval);
        Assert.Equal(1.0, s.Sensors[0].Scale);
        Assert.Equal("both", s.Sensors[1].Edge);
        Assert.Equal("0", s.Sensors[1].Debounce);
        Assert.Equal("pinhole", s.Mqtt!.TopicPrefix);
    }

    [Fact]
    public void Chip_sensors_load_with_their_bus_address_and_interval_defaults()
    {
        var c = EdgeConfigLoader.Parse(Set(Minimal, "sensors", """
            [ { "name": "room", "kind": "bme280", "bus": 1, "address": "0x76" },
              { "name": "office", "kind": "sht3x" },
              { "name": "adc", "kind": "ads1115", "bus": 3, "address": "0x49", "interval": "1s" },
              { "name": "attic", "kind": "dht22", "pin": 4 },
              { "name": "tank", "kind": "ds18b20", "address": "28-0316a2792dff" },
              { "name": "baro", "kind": "bmp280", "address": "0x77" } ]
            """));
        Assert.Empty(c.Problems);
        var s = c.Config!.Sensors;
        Assert.Equal((1, "0x76", "5s"), (s[0].Bus!.Value, s[0].Address, s[0].Interval));
        Assert.Equal((1, "0x44"), (s[1].Bus!.Value, s[1].Address));
        Assert.Equal((3, "0x49", "1s"), (s[2].Bus!.Value, s[2].Address, s[2].Interval));
        Assert.Equal(("/dev/gpiochip0", 4), (s[3].Chip, s[3].Pin!.Value));
        Assert.Equal("28-0316a2792dff", s[4].Address);
        Assert.Equal(["room_temperature", "room_humidity", "room_pressure"], SensorKinds.ReadingsOf(s[0]).Select(r => r.Name));
        Assert.Equal(["°C", "%", "hPa"], SensorKinds.ReadingsOf(s[0]).Select(r => r.Unit));
        Assert.Equal(["adc_a0", "adc_a1", "adc_a2", "adc_a3"], SensorKinds.ReadingsOf(s[2]).Select(r => r.Name));
        Assert.Equal(["baro_temperature", "baro_pressure"], SensorKinds.ReadingsOf(s[5]).Select(r => r.Name));
    }

    [Theory]
    [InlineData(null, "auto")]
    [InlineData("auto", "auto")]
    [InlineData("tcp", "tcp")]
    [InlineData("udp", "udp")]
    public void Camera_transport_is_auto_unless_set_to_tcp_or_udp(string? value, string expected)
    {
        var camera = new JsonObject { ["name"] = "door", ["source"] = "rtsp://192.168.1.64/1" };
        if (value is not null) camera["transport"] = value;
        var result = EdgeConfigLoader.Parse(With(Minimal, o => o["cameras"] = new JsonArray(camera)));
        Assert.Empty(result.Problems);
        Assert.Equal(expected, Assert.Single(result.Config!.Cameras).Transport);
    }

    public static TheoryData<string, string> BadConfigs => new()
    {
        { Remove(Minimal, "deviceId"), "deviceId: is required" },
        { Remove(Minimal, "token"), "token: is required" },
        { Remove(Minimal, "relays"), "relays: is required" },
        { Set(Minimal, "deviceId", "\"gw/1\""), "deviceId: must be 1-64 characters of A-Z a-z 0-9 _ - (got \"gw/1\")" },
        { Set(Minimal, "deviceId", "42"), "deviceId: expected a string, got the number 42" },
        { Set(Minimal, "token", "\"\""), "token: must not be empty" },
        { Set(Minimal, "relays", "[]"), "relays: needs at least one relay URL" },
        { Set(Minimal, "relays", "\"wss://x/uplink\""), "relays: expected an array, got a string" },
        { Set(Minimal, "relays", "[\"https://relay/uplink\"]"), "relays[0]: unsupported scheme \"https\" (use wss://, or ws:// for testing)" },
        { Set(Minimal, "relays", "[\"relay.example.com\"]"), "relays[0]: \"relay.example.com\" is not an absolute URL (use wss://, or ws:// for testing)" },
        { Set(Minimal, "relays", "[\"wss://a/u\", \"wss://a/u\"]"), "relays[1]: duplicate relay \"wss://a/u\"" },
        { Set(Minimal, "trustedCa", "\"/nonexistent/ca.crt\""), "trustedCa: file not found: /nonexistent/ca.crt" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp://h/1\"},{\"name\":\"b\",\"source\":\"http://cam/stream\"}]"), "cameras[1].source: unsupported scheme \"http\" (use rtsp:// or exec:)" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"exec:  \"}]"), "cameras[0].source: exec: needs a command, e.g. exec:rpicam-vid -t 0 --inline --codec h264 -o -" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp://h/1\"},{\"name\":\"a\",\"source\":\"rtsp://h/2\"}]"), "cameras[1].name: duplicate camera name \"a\"" },
        { Set(Minimal, "cameras", "[{\"source\":\"rtsp://h/1\"}]"), "cameras[0].name: is required" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp://h/1\",\"fps\":5}]"), "cameras[0].fps: unknown key \"fps\"" },
        { Set(Minimal, "cameras", "[\"rtsp://h/1\"]"), "cameras[0]: expected an object, got a string" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp://h/1\",\"transport\":\"UDP\"}]"), "cameras[0].transport: must be \"auto\", \"tcp\" or \"udp\" (got \"UDP\")" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp://h/1\",\"transport\":\"rtp/avp\"}]"), "cameras[0].transport: must be \"auto\", \"tcp\" or \"udp\" (got \"rtp/avp\")" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp://h/1\",\"transport\":1}]"), "cameras[0].transport: expected a string, got the number 1" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"exec:cat /dev/video0\",\"transport\":\"udp\"}]"), "cameras[0].transport: is only used by rtsp:// sources (leave it out for exec:)" },
        { Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp://h/1\",\"Transport\":\"udp\"}]"), "cameras[0].Transport: unknown key \"Transport\" (did you mean \"transport\"?)" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"i2c\"}]"), "sensors[0].kind: unsupported kind \"i2c\" (use \"file\", \"gpio\", \"bme280\", \"bmp280\", \"sht3x\", \"dht22\", \"ads1115\", \"ds18b20\")" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\"}]"), "sensors[0].path: is required" },
        { Set(Minimal, "sensors", "[{\"name\":\"room\",\"kind\":\"bme280\",\"bus\":1,\"address\":\"0x44\"}]"), "sensors[0].address: the bme280 answers only at 0x76 or 0x77, not 0x44" },
        { Set(Minimal, "sensors", "[{\"name\":\"room\",\"kind\":\"bme280\",\"address\":\"seventy\"}]"), "sensors[0].address: \"seventy\" is not an I2C address like \"0x76\"" },
        { Set(Minimal, "sensors", "[{\"name\":\"room\",\"kind\":\"sht3x\",\"bus\":-1}]"), "sensors[0].bus: must be between 0 and 255 (got -1)" },
        { Set(Minimal, "sensors", "[{\"name\":\"room\",\"kind\":\"bme280\",\"unit\":\"°F\"}]"), "sensors[0].unit: is not used by kind \"bme280\" (each of its readings has its own unit)" },
        { Set(Minimal, "sensors", "[{\"name\":\"room\",\"kind\":\"bmp280\",\"line\":4}]"), "sensors[0].line: is not used by kind \"bmp280\"" },
        { Set(Minimal, "sensors", "[{\"name\":\"adc\",\"kind\":\"ads1115\",\"address\":\"0x4c\"}]"), "sensors[0].address: the ads1115 answers only at 0x48 or 0x49 or 0x4a or 0x4b, not 0x4c" },
        { Set(Minimal, "sensors", "[{\"name\":\"attic\",\"kind\":\"dht22\"}]"), "sensors[0].pin: is required" },
        { Set(Minimal, "sensors", "[{\"name\":\"attic\",\"kind\":\"dht22\",\"pin\":4,\"interval\":\"1s\"}]"), "sensors[0].interval: must be at least 2000ms (got \"1s\")" },
        { Set(Minimal, "sensors", "[{\"name\":\"tank\",\"kind\":\"ds18b20\"}]"), "sensors[0].address: is required" },
        { Set(Minimal, "sensors", "[{\"name\":\"tank\",\"kind\":\"ds18b20\",\"address\":\"10-0316a2792dff\"}]"), "sensors[0].address: must be a 1-Wire id like \"28-0316a2792dff\" as listed in /sys/bus/w1/devices (got \"10-0316a2792dff\")" },
        { Set(Minimal, "sensors", "[{\"name\":\"room\",\"kind\":\"sht3x\"},{\"name\":\"room_humidity\",\"kind\":\"file\",\"path\":\"/x\"}]"), "sensors[1].name: reading \"room_humidity\" would share its MQTT topic with sensor \"room\"" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/x\",\"interval\":\"5 sec\"}]"), "sensors[0].interval: \"5 sec\" is not a duration (use e.g. 5s, 20ms, 1m)" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/x\",\"interval\":\"5d\"}]"), "sensors[0].interval: \"5d\" has unknown unit \"d\" (use ms, s, m or h)" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/x\",\"interval\":\"5ms\"}]"), "sensors[0].interval: must be at least 10ms (got \"5ms\")" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/x\",\"scale\":0}]"), "sensors[0].scale: must not be 0 (every reading would be the offset)" },
        { Set(Minimal, "proxy", "\"socks5://proxy:1080\""), "proxy: unsupported scheme \"socks5\" (use http://HOST:PORT, an HTTP CONNECT proxy)" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/x\",\"scale\":\"1e-3\"}]"), "sensors[0].scale: expected a number, got a string" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/x\",\"line\":3}]"), "sensors[0].line: is not used by kind \"file\"" },
        { Set(Minimal, "sensors", "[{\"name\":\"g\",\"kind\":\"gpio\",\"chip\":\"/dev/gpiochip0\"}]"), "sensors[0].line: is required" },
        { Set(Minimal, "sensors", "[{\"name\":\"g\",\"kind\":\"gpio\",\"chip\":\"gpiochip0\",\"line\":1}]"), "sensors[0].chip: must be a device path such as /dev/gpiochip0 (got \"gpiochip0\")" },
        { Set(Minimal, "sensors", "[{\"name\":\"g\",\"kind\":\"gpio\",\"chip\":\"/dev/gpiochip0\",\"line\":1.5}]"), "sensors[0].line: expected an integer, got the number 1.5" },
        { Set(Minimal, "sensors", "[{\"name\":\"g\",\"kind\":\"gpio\",\"chip\":\"/dev/gpiochip0\",\"line\":1,\"edge\":\"up\"}]"), "sensors[0].edge: must be \"rising\", \"falling\" or \"both\" (got \"up\")" },
        { Set(Minimal, "sensors", "[{\"name\":\"g\",\"kind\":\"gpio\",\"chip\":\"/dev/gpiochip0\",\"line\":1,\"debounce\":\"fast\"}]"), "sensors[0].debounce: \"fast\" is not a duration (use e.g. 5s, 20ms, 1m)" },
        { Set(Minimal, "sensors", "[{\"name\":\"g\",\"kind\":\"gpio\",\"chip\":\"/dev/gpiochip0\",\"line\":1,\"interval\":\"1s\"}]"), "sensors[0].interval: is not used by kind \"gpio\"" },
        { Set(Minimal, "sensors", "[{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/x\"},{\"name\":\"t\",\"kind\":\"file\",\"path\":\"/y\"}]"), "sensors[1].name: duplicate sensor name \"t\"" },
        { Set(Minimal, "mqtt", "{\"url\":\"http://broker/mqtt\"}"), "mqtt.url: unsupported scheme \"http\" (use wss://, ws://, mqtts:// or mqtt://)" },
        { Set(Minimal, "mqtt", "{}"), "mqtt.url: is required" },
        { Set(Minimal, "mqtt", "{\"url\":\"wss://b/mqtt\",\"topicPrefix\":\"a/#\"}"), "mqtt.topicPrefix: must be a non-empty MQTT topic without + # or a leading/trailing / (got \"a/#\")" },
        { Set(Minimal, "mqtt", "{\"url\":\"wss://b/mqtt\",\"topicprefix\":\"a\"}"), "mqtt.topicprefix: unknown key \"topicprefix\" (did you mean \"topicPrefix\"?)" },
        { Set(Minimal, "web", "{\"listen\":\"0.0.0.0:8081\"}"), "web.listen: \"0.0.0.0:8081\" is not a URL (use e.g. http://0.0.0.0:8081)" },
        { Set(Minimal, "web", "{\"listen\":\"http://device.lan:8081\"}"), "web.listen: host \"device.lan\" must be an IP address, localhost or * (e.g. http://0.0.0.0:8081)" },
        { Set(Minimal, "web", "{\"listen\":\"http://0.0.0.0\"}"), "web.listen: \"http://0.0.0.0\" needs an explicit port (e.g. http://0.0.0.0:8081)" },
        { Set(Minimal, "web", "{\"password\":\"pbkdf2-sha256$x$y$z\"}"), "web.password: looks like a stored hash but is malformed (expected pbkdf2-sha256$ITERATIONS$SALT$HASH in base64)" },
        { Set(Minimal, "dataDir", "\"\""), "dataDir: must not be empty" },
        { Set(Minimal, "Relays", "[]"), "Relays: unknown key \"Relays\" (did you mean \"relays\"?)" },
        { "[1,2]", "expected an object, got an array" },
        { "{ \"deviceId\": \"gw1\", }", "invalid JSON at line 1, column 22: The JSON object contains a trailing comma at the end which is not supported in this mode. Change the reader options." },
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public void Each_problem_is_one_line_with_its_path(string json, string expected)
    {
        var result = EdgeConfigLoader.Parse(json);
        Assert.False(result.IsValid);
        Assert.Null(result.Config);
        Assert.Contains(expected, result.Problems.Select(p => p.ToString()));
        Assert.All(result.Problems, p => Assert.DoesNotContain('\n', p.ToString()));
    }

    [Fact]
    public void Every_problem_is_reported_not_just_the_first()
    {
        var json = """
            { "deviceId": "bad id", "relays": ["http://x/"], "cameras": [ { "name": "a", "source": "http://c" } ], "extra": 1 }
            """;
        var lines = EdgeConfigLoader.Parse(json).Problems.Select(p => p.ToString()).ToList();
        Assert.Equal(5, lines.Count);
        Assert.Contains("token: is required", lines);
        Assert.Contains("extra: unknown key \"extra\"", lines);
    }

    [Fact]
    public void Camera_passwords_do_not_appear_in_problem_lines()
    {
        var problems = EdgeConfigLoader.Parse(Set(Minimal, "cameras", "[{\"name\":\"a\",\"source\":\"rtsp//admin:hunter2@cam/1\"}]")).Problems;
        var line = Assert.Single(problems).ToString();
        Assert.StartsWith("cameras[0].source:", line, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", line, StringComparison.Ordinal);
        Assert.Contains("rtsp//***@cam/1", line, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_is_one_line()
    {
        var result = EdgeConfigLoader.LoadFile("/nonexistent/edge.json");
        Assert.Equal("file not found", Assert.Single(result.Problems).ToString());
    }

    [Theory]
    [InlineData("20ms", 20)]
    [InlineData("5s", 5000)]
    [InlineData("1.5s", 1500)]
    [InlineData("1m", 60_000)]
    [InlineData("1m30s", 90_000)]
    [InlineData("2h", 7_200_000)]
    [InlineData("0", 0)]
    public void Durations_parse(string text, double milliseconds)
    {
        Assert.True(Duration.TryParse(text, out var value, out var error), error);
        Assert.Equal(milliseconds, value.TotalMilliseconds);
    }

    [Theory]
    [InlineData("")]
    [InlineData("5")]
    [InlineData("s")]
    [InlineData("-5s")]
    [InlineData("5S")]
    [InlineData("5 s")]
    [InlineData("1y")]
    public void Non_durations_are_refused(string text) =>
        Assert.False(Duration.TryParse(text, out _, out _));

    private static string With(string json, Action<JsonObject> change)
    {
        var o = JsonNode.Parse(json)!.AsObject();
        change(o);
        return o.ToJsonString();
    }

    private static string Set(string json, string key, string valueJson) => With(json, o => o[key] = JsonNode.Parse(valueJson));

    private static string Remove(string json, string key) => With(json, o => o.Remove(key));
}
