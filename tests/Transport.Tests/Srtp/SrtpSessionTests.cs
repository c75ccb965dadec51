using System.Buffers.Binary;
using System.Security.Cryptography;
using Pinhole.Transport.Srtp;

namespace Pinhole.Transport.Tests.Srtp;

/// <summary>
/// SRTP/SRTCP AES_CM_128_HMAC_SHA1_80 against RFC 3711 Appendix B (B.2 keystream, B.3 key
/// derivation) and libsrtp's reference packets (srtp_driver.c, same master key and salt as B.3),
/// then round trips, tampering, replay and rollover.
/// </summary>
public class SrtpSessionTests
{
    private static readonly byte[] MasterKey = Convert.FromHexString("E1F97A0D3E018BE0D64FA32C06DE4139");
    private static readonly byte[] MasterSalt = Convert.FromHexString("0EC675AD498AFEEBB6960B3AABE6");

    // libsrtp srtp_validate: SSRC 0xcafebabe, seq 0x1234, 16 bytes of 0xab.
    private static readonly byte[] ReferenceRtp = Convert.FromHexString("800f1234decafbadcafebabe" + "abababababababababababababababab");
    private static readonly byte[] ReferenceSrtp = Convert.FromHexString("800f1234decafbadcafebabe" + "4e55dc4ce79978d88ca4d215949d2402" + "b78d6acc99ea179b8dbb");
    private static readonly byte[] ReferenceRtcp = Convert.FromHexString("81c8000bcafebabe" + "abababababababababababababababab");
    private static readonly byte[] ReferenceSrtcp = Convert.FromHexString("81c8000bcafebabe" + "7128035be487b9bdbef89041f977a5a8" + "80000001" + "993e08cd54d6c1230798");

    [Fact]
    public void RFC3711_B2_AES_CM_keystream()
    {
        using var aes = Aes.Create();
        aes.Key = Convert.FromHexString("2B7E151628AED2A6ABF7158809CF4F3C");
        var iv = Convert.FromHexString("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000"); // session salt already shifted; SSRC, ROC, SEQ 0
        var keystream = new byte[65282 * 16]; // the RFC's segment: 1044512 octets
        SrtpSession.Keystream(aes, iv, keystream);
        Assert.Equal("E03EAD0935C95E80E166B16DD92B4EB4" + "D23513162B02D0F72A43A2FE4A5F97AB" + "41E95B3BB0A2E8DD477901E4FCA894C0",
            Convert.ToHexString(keystream, 0, 48));
        Assert.Equal("EC8CDF7398607CB0F2D21675EA9EA1E4" + "362B7C3C6773516318A077D7FC5073AE" + "6A2CC3787889374FBEB4C81B17BA6C44",
            Convert.ToHexString(keystream, keystream.Length - 48, 48));
    }

    [Fact]
    public void RFC3711_B3_key_derivation()
    {
        using var master = Aes.Create();
        master.Key = MasterKey;
        Assert.Equal("C61E7A93744F39EE10734AFE3FF7A087", Convert.ToHexString(SrtpSession.DeriveSessionKey(master, MasterSalt, 0, 16)));
        Assert.Equal("30CBBC08863D8C85D49DB34A9AE1", Convert.ToHexString(SrtpSession.DeriveSessionKey(master, MasterSalt, 2, 14)));
        Assert.Equal(
            "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCEE049646C43D9327AD175578EF7227098" +
            "6371C10C9A369AC2F94A8C5FBCDDDC256D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2",
            Convert.ToHexString(SrtpSession.DeriveSessionKey(master, MasterSalt, 1, 94)));
    }

    [Fact]
    public void Protecting_the_libsrtp_reference_RTP_packet_gives_its_reference_bytes()
    {
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        var output = new byte[ReferenceRtp.Length + SrtpSession.AuthTagLength];
        Assert.Equal(output.Length, sender.ProtectRtp(ReferenceRtp, output));
        Assert.Equal(ReferenceSrtp, output);

        using var receiver = new SrtpSession(MasterKey, MasterSalt);
        var plain = new byte[output.Length];
        Assert.True(receiver.TryUnprotectRtp(ReferenceSrtp, plain, out var length));
        Assert.Equal(ReferenceRtp, plain.AsSpan(0, length).ToArray());
    }

    [Fact]
    public void The_libsrtp_reference_SRTCP_packet_unprotects_and_our_index_1_packet_matches_it()
    {
        using var receiver = new SrtpSession(MasterKey, MasterSalt);
        var plain = new byte[ReferenceSrtcp.Length];
        Assert.True(receiver.TryUnprotectRtcp(ReferenceSrtcp, plain, out var length));
        Assert.Equal(ReferenceRtcp, plain.AsSpan(0, length).ToArray());

        // RFC 3711 §3.4 starts the SRTCP index at 0; libsrtp's reference packet carries index 1, so
        // it must equal the second packet we send.
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        var first = new byte[ReferenceRtcp.Length + SrtpSession.SrtcpTrailerLength];
        var second = new byte[first.Length];
        Assert.Equal(first.Length, sender.ProtectRtcp(ReferenceRtcp, first));
        Assert.Equal(0x80000000u, BinaryPrimitives.ReadUInt32BigEndian(first.AsSpan(ReferenceRtcp.Length)));
        sender.ProtectRtcp(ReferenceRtcp, second);
        Assert.Equal(ReferenceSrtcp, second);
    }

    [Fact]
    public void RTP_round_trips_in_place_with_CSRCs_and_an_extension_and_only_the_payload_is_encrypted()
    {
        var rtp = new byte[12 + 8 + 8 + 100];
        rtp[0] = 0x80 | 0x10 | 2; // V=2, X, CC=2
        rtp[1] = 96;
        BinaryPrimitives.WriteUInt16BigEndian(rtp.AsSpan(2), 7);
        BinaryPrimitives.WriteUInt32BigEndian(rtp.AsSpan(8), 0x11223344);
        BinaryPrimitives.WriteUInt16BigEndian(rtp.AsSpan(20), 0xBEDE);
        BinaryPrimitives.WriteUInt16BigEndian(rtp.AsSpan(22), 1); // one word of extension
        for (var i = 28; i < rtp.Length; i++) rtp[i] = (byte)i;
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        using var receiver = new SrtpSession(MasterKey, MasterSalt);
        var buffer = new byte[rtp.Length + 10];
        rtp.CopyTo(buffer, 0);
        var n = sender.ProtectRtp(buffer.AsSpan(0, rtp.Length), buffer);
        Assert.Equal(rtp.AsSpan(0, 28).ToArray(), buffer.AsSpan(0, 28).ToArray()); // header in the clear
        Assert.NotEqual(rtp.AsSpan(28).ToArray(), buffer.AsSpan(28, 100).ToArray());
        Assert.True(receiver.TryUnprotectRtp(buffer.AsSpan(0, n), buffer, out var length));
        Assert.Equal(rtp, buffer.AsSpan(0, length).ToArray());
    }

    [Fact]
    public void A_tampered_packet_or_tag_is_refused_and_does_not_advance_the_window()
    {
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        using var receiver = new SrtpSession(MasterKey, MasterSalt);
        var srtp = Protect(sender, 0x1234, 1000, 200);
        var plain = new byte[srtp.Length];
        for (var i = 0; i < srtp.Length; i++)
        {
            var copy = (byte[])srtp.Clone();
            copy[i] ^= 0x01;
            Assert.False(receiver.TryUnprotectRtp(copy, plain, out var length), $"byte {i} changed and still accepted");
            Assert.Equal(0, length);
        }
        Assert.True(receiver.TryUnprotectRtp(srtp, plain, out _));

        var srtcp = new byte[ReferenceRtcp.Length + SrtpSession.SrtcpTrailerLength];
        sender.ProtectRtcp(ReferenceRtcp, srtcp);
        for (var i = 0; i < srtcp.Length; i++)
        {
            var copy = (byte[])srtcp.Clone();
            copy[i] ^= 0x80;
            Assert.False(receiver.TryUnprotectRtcp(copy, plain, out _), $"SRTCP byte {i} changed and still accepted");
        }
        Assert.True(receiver.TryUnprotectRtcp(srtcp, plain, out _));
    }

    [Fact]
    public void The_wrong_key_is_refused()
    {
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        var otherKey = (byte[])MasterKey.Clone();
        otherKey[0] ^= 1;
        using var receiver = new SrtpSession(otherKey, MasterSalt);
        Assert.False(receiver.TryUnprotectRtp(Protect(sender, 1, 1, 50), new byte[100], out _));
    }

    [Fact]
    public void Replays_and_packets_older_than_the_window_are_refused_but_late_packets_inside_it_are_accepted()
    {
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        using var receiver = new SrtpSession(MasterKey, MasterSalt);
        var packets = Enumerable.Range(0, 200).Select(i => Protect(sender, 0xABCD, (ushort)(100 + i), 20)).ToArray();
        var plain = new byte[64];
        Assert.True(receiver.TryUnprotectRtp(packets[0], plain, out _));
        Assert.False(receiver.TryUnprotectRtp(packets[0], plain, out _)); // replay
        Assert.True(receiver.TryUnprotectRtp(packets[100], plain, out _));
        Assert.True(receiver.TryUnprotectRtp(packets[50], plain, out _)); // 50 behind: inside the window
        Assert.False(receiver.TryUnprotectRtp(packets[50], plain, out _)); // once only
        Assert.False(receiver.TryUnprotectRtp(packets[36], plain, out _)); // 64 behind: outside
        Assert.True(receiver.TryUnprotectRtp(packets[37], plain, out _)); // 63 behind: inside
        for (var i = 101; i < 200; i++) Assert.True(receiver.TryUnprotectRtp(packets[i], plain, out _));

        var rtcp = Enumerable.Range(0, 3).Select(_ =>
        {
            var b = new byte[ReferenceRtcp.Length + SrtpSession.SrtcpTrailerLength];
            sender.ProtectRtcp(ReferenceRtcp, b);
            return b;
        }).ToArray();
        Assert.True(receiver.TryUnprotectRtcp(rtcp[1], plain, out _));
        Assert.False(receiver.TryUnprotectRtcp(rtcp[1], plain, out _));
        Assert.True(receiver.TryUnprotectRtcp(rtcp[0], plain, out _));
        Assert.True(receiver.TryUnprotectRtcp(rtcp[2], plain, out _));
    }

    [Fact]
    public void The_rollover_counter_advances_when_the_sequence_number_wraps_at_65535()
    {
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        using var receiver = new SrtpSession(MasterKey, MasterSalt);
        var plain = new byte[64];
        // 65530 … 65535, 0 … 9: the packets after the wrap carry index 65536 + seq (ROC 1).
        var sequences = Enumerable.Range(65530, 6).Concat(Enumerable.Range(0, 10)).Select(s => (ushort)s).ToArray();
        var packets = sequences.Select(s => Protect(sender, 0x5555, s, 24)).ToArray();
        foreach (var p in packets) Assert.True(receiver.TryUnprotectRtp(p, plain, out _));

        // What ROC 1 means on the wire: a receiver that starts at 0 … 9 (ROC 0) cannot authenticate them.
        using var fresh = new SrtpSession(MasterKey, MasterSalt);
        Assert.False(fresh.TryUnprotectRtp(packets[^1], plain, out _));

        // A retransmission of 65535 after the wrap is protected with ROC 0 again, as the first time.
        using var sender2 = new SrtpSession(MasterKey, MasterSalt);
        var before = Protect(sender2, 0x5555, 65535, 24);
        Protect(sender2, 0x5555, 3, 24);
        Assert.Equal(before, Protect(sender2, 0x5555, 65535, 24));
        Assert.Equal(packets[^1], Protect(sender2, 0x5555, 9, 24));
    }

    [Fact]
    public void Index_estimation_follows_RFC3711_3_3_1()
    {
        Assert.Equal(65536 + 2, SrtpSession.EstimateIndex(65535, 2));          // wrapped forward
        Assert.Equal(65535, SrtpSession.EstimateIndex(65536 + 2, 65535));      // late packet from before the wrap
        Assert.Equal(-1, SrtpSession.EstimateIndex(2, 65535));                 // before index 0
        Assert.Equal(3L * 65536 + 40000, SrtpSession.EstimateIndex(3L * 65536 + 39000, 40000));
    }

    [Fact]
    public void Key_material_from_the_DTLS_exporter_is_split_client_key_server_key_client_salt_server_salt()
    {
        var exported = Enumerable.Range(0, 60).Select(i => (byte)i).ToArray();
        var server = SrtpKeyMaterial.FromDtlsExporter(exported, weAreDtlsServer: true);
        var client = SrtpKeyMaterial.FromDtlsExporter(exported, weAreDtlsServer: false);
        Assert.Equal(exported[16..32], server.LocalKey);
        Assert.Equal(exported[46..60], server.LocalSalt);
        Assert.Equal(exported[0..16], server.RemoteKey);
        Assert.Equal(exported[32..46], server.RemoteSalt);
        Assert.Equal(server.LocalKey, client.RemoteKey);
        Assert.Equal(server.RemoteSalt, client.LocalSalt);
        Assert.Throws<ArgumentException>(() => SrtpKeyMaterial.FromDtlsExporter(new byte[59], true));

        // The two sides' sessions interoperate.
        using var serverOut = new SrtpSession(server.LocalKey, server.LocalSalt);
        using var clientIn = new SrtpSession(client.RemoteKey, client.RemoteSalt);
        Assert.True(clientIn.TryUnprotectRtp(Protect(serverOut, 9, 9, 30), new byte[64], out _));
    }

    [Fact]
    public void Malformed_input_is_refused_without_exceptions()
    {
        using var receiver = new SrtpSession(MasterKey, MasterSalt);
        var random = new Random(3711);
        var plain = new byte[2048];
        for (var n = 0; n < ReferenceSrtp.Length; n++)
        {
            Assert.False(receiver.TryUnprotectRtp(ReferenceSrtp.AsSpan(0, n), plain, out _));
            Assert.False(receiver.TryUnprotectRtcp(ReferenceSrtcp.AsSpan(0, n), plain, out _));
        }
        for (var round = 0; round < 5000; round++)
        {
            var bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            if (bytes.Length > 0) bytes[0] = (byte)(0x80 | (bytes[0] & 0x3F));
            Assert.False(receiver.TryUnprotectRtp(bytes, plain, out _));
            Assert.False(receiver.TryUnprotectRtcp(bytes, plain, out _));
        }
        Assert.False(receiver.TryUnprotectRtp(ReferenceSrtp, new byte[10], out _)); // destination too small
        using var sender = new SrtpSession(MasterKey, MasterSalt);
        Assert.Throws<ArgumentException>(() => sender.ProtectRtp(new byte[11], new byte[64]));
        Assert.Throws<ArgumentException>(() => sender.ProtectRtp(ReferenceRtp, new byte[ReferenceRtp.Length]));
        Assert.Throws<ArgumentException>(() => sender.ProtectRtcp(new byte[7], new byte[64]));
        Assert.Throws<ArgumentException>(() => new SrtpSession(new byte[15], MasterSalt));
        Assert.Throws<ArgumentException>(() => new SrtpSession(MasterKey, new byte[16]));
    }

    private static byte[] Protect(SrtpSession session, uint ssrc, ushort sequence, int payload)
    {
        var rtp = new byte[12 + payload];
        rtp[0] = 0x80;
        rtp[1] = 96;
        BinaryPrimitives.WriteUInt16BigEndian(rtp.AsSpan(2), sequence);
        BinaryPrimitives.WriteUInt32BigEndian(rtp.AsSpan(4), sequence * 3000u);
        BinaryPrimitives.WriteUInt32BigEndian(rtp.AsSpan(8), ssrc);
        for (var i = 12; i < rtp.Length; i++) rtp[i] = (byte)(i * 7);
        var srtp = new byte[rtp.Length + SrtpSession.AuthTagLength];
        session.ProtectRtp(rtp, srtp);
        return srtp;
    }
}
