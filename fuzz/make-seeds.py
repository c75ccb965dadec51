#!/usr/bin/env python3
"""Writes the checked-in seed corpora under fuzz/corpus/TARGET/ (run once; the output is committed).

Seeds are small on purpose (libFuzzer mutates them): the first few KiB of the real captures in
tests/Transport.Tests/Captures (GStreamer RTSP server, ffmpeg; see the README there) and
hand-made messages written from the RFCs, independently of the code under test.
"""
import base64, os, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAP = os.path.join(ROOT, "tests", "Transport.Tests", "Captures")
OUT = os.path.join(ROOT, "fuzz", "corpus")

def cap(name):
    with open(os.path.join(CAP, name), "rb") as f:
        return f.read()

def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def frames(stream):
    """Interleaved frames ($, channel, length, payload) after the PLAY response."""
    at = stream.index(b"$")
    out = []
    while at + 4 <= len(stream) and stream[at] == 0x24:
        ch, n = stream[at + 1], struct.unpack(">H", stream[at + 2:at + 4])[0]
        if at + 4 + n > len(stream):
            break
        out.append((ch, stream[at + 4:at + 4 + n]))
        at += 4 + n
    return out

def interleave(fs, limit, remap=None):
    out = b""
    for ch, p in fs:
        if remap is not None:
            if ch not in remap:
                continue
            ch = remap[ch]
        f = bytes([0x24, ch]) + struct.pack(">H", len(p)) + p
        if len(out) + len(f) > limit:
            break
        out += f
    return out

crlf = lambda *lines: ("\r\n".join(lines) + "\r\n\r\n").encode()

# ---- rtsp: captured responses and hand-made requests (RFC 2326)
for n in ["h264-aac", "h265", "pcma", "pcmu"]:
    put("rtsp", n + ".describe", cap(n + ".describe.bin"))
put("rtsp", "digest.401", cap("digest.401.bin"))
s = cap("h264-aac.stream.bin")
put("rtsp", "play-and-frames", s[: s.index(b"$")] + interleave(frames(s)[:3], 600))
put("rtsp", "options", crlf("OPTIONS rtsp://127.0.0.1:8554/gw1/door RTSP/1.0", "CSeq: 1", "User-Agent: seed"))
put("rtsp", "setup", crlf("SETUP rtsp://127.0.0.1:8554/gw1/door/trackID=0 RTSP/1.0", "CSeq: 3",
    "Transport: RTP/AVP/TCP;unicast;interleaved=0-1, RTP/AVP;unicast;client_port=5000-5001;ssrc=1A2B3C4D;mode=\"PLAY\"",
    "Session: 12345678;timeout=60"))
put("rtsp", "describe-digest", crlf("DESCRIBE rtsp://127.0.0.1:8554/gw1/door RTSP/1.0", "CSeq: 2",
    'Authorization: Digest username="alice", realm="pinhole", nonce="18c0a1b2c3d.0123456789abcdef0123456789abcdef", '
    'uri="rtsp://127.0.0.1:8554/gw1/door", response="00112233445566778899aabbccddeeff", algorithm=MD5, qop=auth, nc=00000001, cnonce="abc"'))
put("rtsp", "describe-basic", crlf("DESCRIBE rtsp://127.0.0.1:8554/gw1/door RTSP/1.0", "CSeq: 2",
    "Authorization: Basic " + base64.b64encode(b"alice:secret").decode()))
put("rtsp", "401-two-challenges", crlf("RTSP/1.0 401 Unauthorized", "CSeq: 2",
    'WWW-Authenticate: Digest realm="pinhole", nonce="abc", algorithm=SHA-256, qop="auth", stale=FALSE',
    'WWW-Authenticate: Basic realm="pinhole"'))
put("rtsp", "announce-body", crlf("ANNOUNCE rtsp://127.0.0.1:8554/gw1/in/x RTSP/1.0", "CSeq: 4",
    "Content-Type: application/sdp", "Content-Length: 10")[:-0 or None] + b"v=0\r\ns=-\r\n")

# ---- sdp: the DESCRIBE bodies, and a hand-made one with every payload format we depacketize
for n in ["h264-aac", "h265", "pcma", "pcmu"]:
    d = cap(n + ".describe.bin")
    put("sdp", n, d[d.index(b"\r\n\r\n") + 4:])
put("sdp", "all-formats", ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\na=control:*\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAZR4sXUA==,aM48gA==\r\na=control:trackID=0\r\n"
    "m=video 0 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=fmtp:97 sprop-vps=QAEMAf//AWAAAAMAkAAAAwAAAwA/ugJA;sprop-sps=QgEBAWAAAAMAkAAAAwAAAwA/oAUCAXHy5bpKTC//AAEAAWoMDAwIAAADAAgAAAMAyEA=;sprop-pps=RAHAcYMS\r\na=control:trackID=1\r\n"
    "m=audio 0 RTP/AVP 98\r\na=rtpmap:98 MPEG4-GENERIC/48000/2\r\na=fmtp:98 streamtype=5;mode=AAC-hbr;config=1190;sizelength=13;indexlength=3;indexdeltalength=3\r\na=control:rtsp://127.0.0.1/x/trackID=2\r\n"
    "m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    "m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/1\r\n").encode())

# ---- depacketizers: the first few KiB of each capture's interleaved stream
h264 = frames(cap("h264-aac.stream.bin"))
put("h264", "gstreamer-x264", interleave(h264, 6000, {0: 0, 1: 1}))
put("h264", "gstreamer-x264-later", interleave(h264[40:], 4000, {0: 0, 1: 1}))
put("aac", "gstreamer-voaacenc", interleave(h264, 4000, {2: 0, 3: 1}))
h265 = frames(cap("h265.stream.bin"))
put("h265", "gstreamer-x265", interleave(h265, 6000))
put("h265", "gstreamer-x265-later", interleave(h265[40:], 4000))
put("g711", "gstreamer-pcma", interleave(frames(cap("pcma.stream.bin")), 2000))
put("g711", "gstreamer-pcmu-as-stereo", interleave(frames(cap("pcmu.stream.bin")), 2000, {0: 2, 1: 3}))

# ---- rtp: length-prefixed RTP packets; rtcp: the RTCP packets of the captures, and hand-made ones
def records(ps):
    return b"".join(struct.pack(">H", len(p)) + p for p in ps)
put("rtp", "h264-packets", records([p for ch, p in h264 if ch == 0 and len(p) < 1200][:6]))
put("rtp", "pcma-packets", records([p for ch, p in frames(cap("pcma.stream.bin")) if ch == 0][:4]))
ext = bytes([0xB0, 96, 0, 1, 0, 0, 0, 9, 0, 0, 0, 7, 0, 0, 0, 42, 0xBE, 0xDE, 0, 1, 1, 2, 3, 4]) + b"payload" + bytes([0, 0, 3])
put("rtp", "csrc-extension-padding", records([ext]))
for i, (ch, p) in enumerate([f for f in h264 + h265 if f[0] % 2 == 1][:4]):
    put("rtcp", f"captured-{i}", p)
sr = struct.pack(">BBHIIIIII", 0x81, 200, 12, 0x1234, 0xE000, 0x1, 90000, 10, 1000) + struct.pack(">IIIIII", 0x55, 0x01000002, 77, 5, 0, 0)
bye = struct.pack(">BBHI", 0x81, 203, 3, 0x1234) + bytes([4]) + b"gone" + bytes([0, 0, 0])
put("rtcp", "sr-bye", sr + bye)
rr = struct.pack(">BBHI", 0x80, 201, 1, 0x99)
put("rtcp", "rr-empty", rr)

# ---- uplink: one message of each kind (docs/uplink-protocol.md)
def msg(ch, t, body):
    return bytes([ch, t]) + struct.pack(">I", len(body)) + body
str8 = lambda s: bytes([len(s)]) + s
str16 = lambda s: struct.pack(">H", len(s)) + s
sps = base64.b64decode("Z0LAHtoCgL/lwFqDAwNSgAAAAwCAAAAZR4sXUA==")
pps = base64.b64decode("aM48gA==")
track_h264 = bytes([1]) + struct.pack(">IIIIBB", 90000, 640, 360, 0, 0, 2) + str16(sps) + str16(pps) + str16(b"")
track_aac = bytes([3]) + struct.pack(">IIIIBB", 48000, 0, 0, 48000, 1, 0) + str16(bytes([0x11, 0x88]))
put("uplink", "control", msg(0, 1, struct.pack(">HHI", 1, 1, 3) + str8(b"pinhole-edge/1.0"))
    + msg(0, 2, struct.pack(">HIIII", 1, 3, 5000, 1000, 8 << 20)) + msg(0, 5, struct.pack(">Q", 123))
    + msg(0, 7, struct.pack(">QQIQ", 1, 123, 50, 4096)) + msg(0, 8, struct.pack(">HQQ", 1, 2, 3000))
    + msg(0, 4, bytes([1]) + str16(b"bye")))
put("uplink", "media", msg(1, 1, struct.pack(">H", 1) + str8(b"door") + bytes([2]) + track_h264 + track_aac)
    + msg(1, 2, struct.pack(">QHBBQQQ", 1, 1, 0, 1, 0, 0, 99) + b"\x00\x00\x00\x01\x65\x88\x84")
    + msg(1, 2, struct.pack(">QHBBQQQ", 2, 1, 1, 0, 1024, 1024, 100) + b"\x21\x10")
    + msg(1, 3, struct.pack(">H", 1)))
put("uplink", "data", msg(2, 1, struct.pack(">Q", 7) + b'{"cameras":[]}') + msg(2, 2, struct.pack(">QB", 7, 0) + b"applied")
    + msg(2, 3, b'{"uptime":5}') + msg(9, 9, b"future"))

# ---- tunnel: tunnel-channel messages (docs/uplink-protocol.md, tunnel channel); first byte 0 = the device's mux, 1 = the relay's
t_open = lambda sid, win, name: msg(3, 1, struct.pack(">II", sid, win) + str8(name))
t_accept = lambda sid, win: msg(3, 2, struct.pack(">II", sid, win))
t_data = lambda sid, data: msg(3, 3, struct.pack(">I", sid) + data)
t_window = lambda sid, inc: msg(3, 4, struct.pack(">II", sid, inc))
t_close = lambda sid: msg(3, 5, struct.pack(">I", sid))
t_reset = lambda sid, code, text: msg(3, 6, struct.pack(">IB", sid, code) + str16(text))
put("tunnel", "device-open-data-close", bytes([0]) + t_open(1, 1024, b"ssh") + t_open(2, 1024, b"web") + t_data(1, b"SSH-2.0-x\r\n")
    + t_window(1, 512) + t_close(1) + t_reset(2, 5, b"gone") + t_open(3, 0, b"db"))
put("tunnel", "device-overrun-and-limit", bytes([0]) + t_open(1, 64, b"aa") + t_data(1, bytes(1025))
    + b"".join(t_open(i, 64, b"bb") for i in range(2, 8)) + t_open(2, 64, b"bb"))
put("tunnel", "relay-accept-data-window", bytes([1]) + t_accept(1, 2048) + t_data(1, b"hello") + t_window(1, 0x7FFFFFFF)
    + t_window(1, 0x7FFFFFFF) + t_close(1) + t_reset(2, 2, b"connect-failed") + t_accept(3, 1) + t_open(9, 1, b"x") + t_data(77, b"stale"))

# ---- http-chunks: the relay's chunked GET body of the HTTP fallback (RFC 9112 §7.1), one uplink message per chunk
def chunk(data, ext=b""):
    return b"%x" % len(data) + ext + b"\r\n" + data + b"\r\n"
ping = msg(0, 5, struct.pack(">Q", 123))
ack = msg(0, 7, struct.pack(">QQIQ", 1, 123, 50, 4096))
welcome = msg(0, 2, struct.pack(">HIIII", 1, 3, 5000, 1000, 8 << 20))
put("http-chunks", "messages", chunk(welcome) + chunk(ping) + chunk(ack) + b"0\r\n\r\n")
put("http-chunks", "split-and-ext", chunk(ack[:5], b";x=1") + chunk(ack[5:] + ping[:3]) + chunk(ping[3:]).upper() + b"0\r\nX-Trailer: 1\r\n\r\n")
put("http-chunks", "oversize", b"FFFFFFFF\r\n" + ping)
put("http-chunks", "tunnel-data", chunk(t_data(5, bytes(range(200)))) + chunk(t_close(5)))

# ---- websocket: frames a relay sends to the edge (RFC 6455 §5)
put("websocket", "frames", bytes([0x82, 5]) + b"hello" + bytes([0x89, 0]) + bytes([0x8A, 4, 1, 2, 3, 4])
    + bytes([0x02, 126, 0, 130]) + bytes(130) + bytes([0x80, 1, 9]) + bytes([0x88, 2, 3, 0xE8]))
put("websocket", "masked-64bit", bytes([0x82, 0xFF]) + struct.pack(">Q", 70000) + bytes([1, 2, 3, 4]) + bytes(16))
# ---- parameter sets: 0 = H.264 SPS, 1 = H.265 SPS, 2 = AudioSpecificConfig
put("parameter-sets", "h264-sps", b"\x00" + sps)
put("parameter-sets", "h265-sps", b"\x01" + base64.b64decode("QgEBAWAAAAMAkAAAAwAAAwA/oAUCAXHy5bpKTC//AAEAAWoMDAwIAAADAAgAAAMAyEA="))
put("parameter-sets", "asc-48k-mono", b"\x02\x11\x88")
put("parameter-sets", "asc-escape-rate", b"\x02\x17\x80\x00\x5d\xc0")
# ---- annexb: the start of ffmpeg's Annex-B output
put("annexb", "ffmpeg-testsrc", cap("ffmpeg-testsrc.h264")[:4096])
put("annexb", "ffmpeg-testsrc-2slices", cap("ffmpeg-testsrc-2slices.h264")[:4096])

# ---- stun: ICE connectivity checks as a browser sends them, and the relay's answers (RFC 8489, RFC 8445)
import hashlib, hmac, json, zlib
COOKIE = 0x2112A442
def attr(t, v):
    return struct.pack(">HH", t, len(v)) + v + bytes(-len(v) % 4)
def stun(mtype, tid, attrs, key=None, fingerprint=True):
    body = b"".join(attrs)
    if key is not None:
        head = struct.pack(">HHI", mtype, len(body) + 24, COOKIE) + tid
        body += attr(0x0008, hmac.new(key, head + body, hashlib.sha1).digest())
    if fingerprint:
        head = struct.pack(">HHI", mtype, len(body) + 8, COOKIE) + tid
        body += attr(0x8028, struct.pack(">I", zlib.crc32(head + body) ^ 0x5354554E))
    return struct.pack(">HHI", mtype, len(body), COOKIE) + tid + body
tid = bytes(range(1, 13))
key = b"fuzz-ice-password-0123456789"
request = stun(0x0001, tid, [attr(0x0006, b"relayufrag:browserufrag"), attr(0x0024, struct.pack(">I", 1853824767)),
    attr(0x802A, struct.pack(">Q", 0x1122334455667788)), attr(0x0025, b""), attr(0xC057, b"\x00\x01\x00\x0a")], key)
put("stun", "binding-request", request)
xport = 54321 ^ (COOKIE >> 16)
v4 = struct.pack(">BBH", 0, 1, xport) + struct.pack(">I", 0x7F000001 ^ COOKIE)
v6addr = bytes.fromhex("20010db8000000000000000000000001")
v6 = struct.pack(">BBH", 0, 2, xport) + bytes(a ^ b for a, b in zip(v6addr, struct.pack(">I", COOKIE) + tid))
put("stun", "success-ipv4", stun(0x0101, tid, [attr(0x0020, v4), attr(0x8022, b"pinhole-relay")], key))
put("stun", "success-ipv6", stun(0x0101, tid, [attr(0x0020, v6)], key))
put("stun", "error-401", stun(0x0111, tid, [attr(0x0009, struct.pack(">HBB", 0, 4, 1) + b"Unauthorized")]))
put("stun", "ice-tcp-two-frames", b"".join(struct.pack(">H", len(m)) + m for m in [request, stun(0x0011, tid, [])]))

# ---- srtp: plain RTP and RTCP packets (the target protects and unprotects them) and bytes that are no SRTP
put("srtp", "h264-and-sr", records([p for ch, p in h264 if ch == 0 and len(p) < 600][:4] + [sr, rr]))
put("srtp", "csrc-extension-padding", records([ext, ext[:12] + bytes(10)]))

# ---- rtcp-feedback: what a browser sends back on a WebRTC session (RFC 4585, RFC 5104)
def fb(pt, fmt, sender, media, fci):
    return struct.pack(">BBHII", 0x80 | fmt, pt, (12 + len(fci)) // 4 - 1, sender, media) + fci
nack = fb(205, 1, 1, 0x1234, struct.pack(">HH", 100, 0b1000000000000101) + struct.pack(">HH", 65530, 0xFFFF))
pli = fb(206, 1, 1, 0x1234, b"")
fir = fb(206, 4, 1, 0, struct.pack(">IB3x", 0x1234, 7) + struct.pack(">IB3x", 0x5678, 8))
remb = fb(206, 15, 1, 0, b"REMB" + bytes([1, 0x0F, 0x42, 0x40]) + struct.pack(">I", 0x1234))
rr_block = struct.pack(">BBHI", 0x81, 201, 7, 1) + struct.pack(">IIIIII", 0x1234, 0x05000003, 1000, 20, 0, 0)
put("rtcp-feedback", "rr-nack-pli", rr_block + nack + pli)
put("rtcp-feedback", "fir-remb-bye", fir + remb + bye)
padded = bytearray(fb(205, 1, 1, 0x1234, struct.pack(">HH", 7, 0)) + bytes([0, 0, 0, 4]))
padded[0] |= 0x20
padded[2:4] = struct.pack(">H", len(padded) // 4 - 1)
put("rtcp-feedback", "nack-padded", bytes(padded))

# ---- release-manifest: a bundle head (docs/updates.md) and a bare manifest
manifest = json.dumps({"format": 1, "version": "1.4.0", "architecture": "linux-arm64", "created": "2026-12-01T10:00:00Z",
    "files": [{"path": "pinhole-edge", "size": 14000000, "sha256": "ab" * 32, "executable": True},
              {"path": "wwwroot/index.html", "size": 900, "sha256": "0f" * 32}]}, separators=(",", ":")).encode()
put("release-manifest", "bundle-head", b"PHNBNDL1" + struct.pack(">I", len(manifest)) + manifest + struct.pack(">H", 64) + bytes(range(64)) + b"\x7fELF")
put("release-manifest", "manifest", manifest)
