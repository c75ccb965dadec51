#!/usr/bin/python3
"""Records what a real RTSP server sends, for Pinhole's regression tests.

Speaks just enough RTSP 1.0 itself (independent of the code under test): OPTIONS, DESCRIBE,
SETUP (RTP/AVP/TCP interleaved) for every m= section, PLAY; then records every byte the server
sends for --seconds. Writes:
  NAME.describe.bin  the exact bytes of the DESCRIBE response (status line, headers, SDP body)
  NAME.stream.bin    every byte received after sending PLAY: the PLAY response, then '$' frames
With --unauthorized it only sends DESCRIBE without credentials and writes NAME.401.bin.

  capture.py --url rtsp://127.0.0.1:PORT/cam --name h264-aac --seconds 2
"""
import argparse, re, socket, time, urllib.parse


def read_response(sock, buf):
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("server closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest[:n], rest[n:]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--unauthorized", action="store_true")
    a = p.parse_args()
    u = urllib.parse.urlparse(a.url)
    sock = socket.create_connection((u.hostname, u.port or 554), timeout=10)
    cseq = 0
    buf = b""

    def request(method, url, extra=""):
        nonlocal cseq, buf
        cseq += 1
        sock.sendall(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: pinhole-capture\r\n{extra}\r\n".encode())
        resp, buf = read_response(sock, buf)
        return resp

    if a.unauthorized:
        open(f"{a.name}.401.bin", "wb").write(request("DESCRIBE", a.url, "Accept: application/sdp\r\n"))
        return
    request("OPTIONS", a.url)
    describe = request("DESCRIBE", a.url, "Accept: application/sdp\r\n")
    open(f"{a.name}.describe.bin", "wb").write(describe)
    head, body = describe.split(b"\r\n\r\n", 1)
    base = re.search(rb"(?im)^content-base:\s*(\S+)", head).group(1).decode()
    controls = re.findall(r"(?m)^a=control:(\S+)", body.decode().split("m=", 1)[1])
    session = None
    for i, c in enumerate(controls):
        url = c if c.startswith("rtsp://") else base.rstrip("/") + "/" + c
        extra = f"Transport: RTP/AVP/TCP;unicast;interleaved={2*i}-{2*i+1}\r\n"
        if session:
            extra += f"Session: {session}\r\n"
        resp = request("SETUP", url, extra)
        session = session or re.search(rb"(?im)^session:\s*([^;\r\n]+)", resp).group(1).decode()
    cseq += 1
    sock.sendall(f"PLAY {base} RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {session}\r\nRange: npt=0.000-\r\n\r\n".encode())
    data = bytearray(buf)
    end = time.time() + a.seconds
    sock.settimeout(0.5)
    while time.time() < end:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        data += chunk
    open(f"{a.name}.stream.bin", "wb").write(bytes(data))
    sock.close()


if __name__ == "__main__":
    main()
