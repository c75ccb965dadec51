using System.Text;
using System.Text.Json;
using Pinhole.Streaming;
using Pinhole.Relay.Web;
using Pinhole.Transport.Media;
using Pinhole.Transport.Tests.Fmp4;

namespace Pinhole.Relay.Tests.Web;

public class PlayerFeedTests
{
    private static readonly TrackInfo Video = new()
    {
        Codec = MediaCodec.H264, ClockRate = 90_000, Width = 640, Height = 360,
        ParameterSets = [new byte[] { 0x67, 0x42, 0xc0, 0x1e, 0xac }, new byte[] { 0x68, 0xce, 0x3c, 0x80 }],
    };
    private static readonly TrackInfo Audio = new() { Codec = MediaCodec.Aac, ClockRate = 48_000, SampleRate = 48_000, Channels = 2, AudioSpecificConfig = new byte[] { 0x11, 0x90 } };
    private static readonly TrackInfo Alaw = new() { Codec = MediaCodec.PcmAlaw, ClockRate = 8000, SampleRate = 8000, Channels = 1 };
    private static readonly TrackInfo Hevc = new() { Codec = MediaCodec.H265, ClockRate = 90_000, ParameterSets = [new byte[] { 0x42, 0x01, 0x01, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 0x5d }] };

    private static MediaEvent Tracks(params TrackInfo[] t) => new(MediaEventKind.Tracks, t, default);
    private static MediaEvent Frame(int track, long dts, bool key) => new(MediaEventKind.Frame, null, new AccessUnit(track, dts, dts, key, new byte[] { 0, 0, 0, 1, key ? (byte)0x65 : (byte)0x41 }));
    private static readonly MediaEvent Offline = new(MediaEventKind.Offline, null, default);

    private static string Describe(IEnumerable<PlayerMessage> messages) => string.Join(" ", messages.Select(m =>
        m.IsText ? JsonDocument.Parse(m.Payload).RootElement.GetProperty("type").GetString()
                 : string.Concat(BoxWalker.Walk(m.Payload).Select(b => b.Type))));

    [Fact]
    public void Playback_starts_at_a_video_keyframe_and_audio_waits_for_it()
    {
        var feed = new PlayerFeed("rtsp://h:8554/d/c");
        Assert.Equal("", Describe(feed.Handle(Tracks(Video, Audio))));
        Assert.Equal("init ftypmoov", Describe(feed.Handle(Frame(1, 0, true)))); // audio first: init, but no audio yet
        Assert.Equal("", Describe(feed.Handle(Frame(0, 0, false))));
        Assert.Equal("moofmdat", Describe(feed.Handle(Frame(0, 3600, true))));
        Assert.Equal("moofmdat", Describe(feed.Handle(Frame(1, 1024, true))));
        Assert.Equal("moofmdat", Describe(feed.Handle(Frame(0, 7200, false))));
        Assert.Equal(3, feed.Fragments);

        // New tracks: the next frame brings a new init describing them.
        Assert.Empty(feed.Handle(Tracks(Video)));
        var init = JsonDocument.Parse(feed.Handle(Frame(0, 10_800, true))[0].Payload).RootElement;
        Assert.Equal("video/mp4; codecs=\"avc1.42c01e\"", init.GetProperty("mime").GetString());
        Assert.False(init.GetProperty("audio").GetBoolean());
        Assert.Equal(640, init.GetProperty("width").GetInt32());
    }

    [Fact]
    public void After_offline_the_next_frames_start_a_new_init_even_with_unchanged_tracks()
    {
        var feed = new PlayerFeed("rtsp://h:8554/d/c");
        feed.Handle(Tracks(Video));
        Assert.Equal("init ftypmoov moofmdat", Describe(feed.Handle(Frame(0, 90_000, true))));
        Assert.Equal("offline", Describe(feed.Handle(Offline)));
        Assert.Equal("init ftypmoov", Describe(feed.Handle(Frame(0, 5, false))));
        Assert.Equal("moofmdat", Describe(feed.Handle(Frame(0, 3605, true))));
    }

    [Fact]
    public void G711_is_left_out_and_a_stream_browsers_cannot_play_is_reported_once()
    {
        var feed = new PlayerFeed("rtsp://h:8554/d/c");
        feed.Handle(Tracks(Video, Alaw));
        var init = feed.Handle(Frame(0, 0, true));
        var json = JsonDocument.Parse(init[0].Payload).RootElement;
        Assert.False(json.GetProperty("audio").GetBoolean());
        Assert.Empty(feed.Handle(Frame(1, 0, true)));

        var hevc = new PlayerFeed("rtsp://h:8554/d/c");
        hevc.Handle(Tracks(Hevc));
        var msg = Assert.Single(hevc.Handle(Frame(0, 0, true)));
        var unsupported = JsonDocument.Parse(msg.Payload).RootElement;
        Assert.Equal("unsupported", unsupported.GetProperty("type").GetString());
        Assert.Equal("H265", unsupported.GetProperty("codec").GetString());
        Assert.Equal("rtsp://h:8554/d/c", unsupported.GetProperty("rtsp").GetString());
        Assert.Empty(hevc.Handle(Frame(0, 3600, false)));

        var onlyAlaw = new PlayerFeed("x");
        onlyAlaw.Handle(Tracks(Alaw));
        Assert.Contains("PcmAlaw", Encoding.UTF8.GetString(Assert.Single(onlyAlaw.Handle(Frame(0, 0, true))).Payload), StringComparison.Ordinal);
    }
}

// The relay's sessions as the cookie handler uses them: SessionCookieFormat (ID.HMAC) over SessionTicketStore.
public class SessionStoreTests
{
    [Fact]
    public async Task Sessions_expire_and_cookies_not_signed_here_are_refused()
    {
        var time = new ManualTimeProvider();
        var options = Microsoft.Extensions.Options.Options.Create(new BrowserViewingOptions { SessionLifetime = TimeSpan.FromHours(1) });
        var backend = new MemorySessionBackend();
        var store = new RelaySessions(options, time, backend);
        var cookie = await store.CreateAsync("alice");
        Assert.Equal("alice", await store.ValidateAsync(cookie));
        var id = cookie[..cookie.IndexOf('.', StringComparison.Ordinal)];
        Assert.Null(await store.ValidateAsync(id));
        Assert.Null(await store.ValidateAsync(id + ".AAAA"));
        Assert.Null(await new RelaySessions(options, time, backend).ValidateAsync(cookie)); // another key
        time.Advance(TimeSpan.FromMinutes(59));
        Assert.Equal("alice", await store.ValidateAsync(cookie));
        time.Advance(TimeSpan.FromMinutes(2));
        Assert.Null(await store.ValidateAsync(cookie));
        await store.CreateAsync("bob"); // a new session sweeps the expired ones
        Assert.Equal(1, backend.Count);
    }

    [Fact]
    public async Task The_signing_key_is_kept_in_the_data_dir()
    {
        var dir = Directory.CreateTempSubdirectory("pinhole-session-");
        try
        {
            var options = Microsoft.Extensions.Options.Options.Create(new BrowserViewingOptions { DataDir = dir.FullName });
            var a = new RelaySessions(options, TimeProvider.System, new MemorySessionBackend());
            var key = File.ReadAllBytes(Path.Combine(dir.FullName, "browser-session.key"));
            Assert.Equal(32, key.Length);
            _ = new SessionKey(options);
            Assert.Equal(key, File.ReadAllBytes(Path.Combine(dir.FullName, "browser-session.key")));
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir.FullName, "browser-session.key")));
            Assert.NotNull(await a.ValidateAsync(await a.CreateAsync("bob")));
        }
        finally
        {
            dir.Delete(true);
        }
    }
}

public class BrowserViewingOptionsTests
{
    [Theory]
    [InlineData("127.0.0.1:8554", 8554)]
    [InlineData("0.0.0.0:9554", 9554)]
    [InlineData("[::1]:7554", 7554)]
    [InlineData("nonsense", 8554)]
    public void Relay_config_gives_the_data_dir_and_the_rtsp_port(string rtsp, int port)
    {
        var options = new BrowserViewingOptions();
        options.ApplyRelayConfig(new Pinhole.Relay.Configuration.RelayConfig { Rtsp = rtsp, DataDir = "/var/lib/pinhole-relay" });
        Assert.Equal(port, options.RtspPort);
        Assert.Equal("/var/lib/pinhole-relay", options.DataDir);
    }
}
