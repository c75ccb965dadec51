#!/usr/bin/env python3
"""Acts as an attacker against pinhole-edge's local page on loopback and prints what it got.

    edge_page_attack.py EDGE_DLL

Starts the edge (dotnet EDGE_DLL) with a page password and an unreachable relay, then:
  1. idle flood: 64 connections from 127.0.0.2 that send nothing; does the owner at 127.0.0.3 get the
     login page and log in (within 5 s), and how many of the 64 does the edge still hold after 20 s?
  2. spread guessing: one wrong password from each of 20 addresses (127.0.0.10-29); how many were
     checked (401) and how many refused (429); then does the right password from a new address get in?
Only 127.0.0.x is ever contacted.
"""
import json, socket, subprocess, sys, tempfile, time, urllib.parse

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def http(port, src, method, path, body=None, timeout=5):
    s = socket.socket(); s.bind((src, 0)); s.settimeout(timeout); s.connect(("127.0.0.1", port))
    data = body.encode() if body else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
    if body is not None: head += f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(data)}\r\n"
    s.sendall(head.encode() + b"\r\n" + data)
    resp = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        resp += chunk
    s.close()
    if not resp: raise ConnectionResetError("closed without an answer")
    return int(resp.split(b" ", 2)[1])

def main():
    dll = sys.argv[1]
    d = tempfile.mkdtemp(prefix="pinhole-edge-attack-")
    web, closed = free_port(), free_port()
    cfg = {"deviceId": "gw1", "token": "a-long-random-secret", "relays": [f"ws://127.0.0.1:{closed}/uplink"],
           "web": {"listen": f"http://127.0.0.1:{web}", "password": "right-password"}, "dataDir": f"{d}/data"}
    open(f"{d}/edge.json", "w").write(json.dumps(cfg))
    edge = subprocess.Popen(["dotnet", dll, "--config", f"{d}/edge.json"], stdout=subprocess.DEVNULL, stderr=open(f"{d}/edge.log", "w"))
    try:
        for _ in range(300):
            try: http(web, "127.0.0.1", "GET", "/healthz", timeout=1); break
            except OSError: time.sleep(0.1)
        login = "password=" + urllib.parse.quote("right-password")
        # 1. idle flood
        idle = []
        for _ in range(64):
            try:
                s = socket.socket(); s.bind(("127.0.0.2", 0)); s.settimeout(2); s.connect(("127.0.0.1", web)); idle.append(s)
            except OSError: pass
        time.sleep(1)
        try:
            t = time.time(); st = http(web, "127.0.0.3", "POST", "/login", login, timeout=5); owner = f"login answered {st} in {time.time() - t:.2f} s"
        except OSError as e:
            owner = f"login failed ({e})"
        time.sleep(19)
        held = 0
        for s in idle:
            s.setblocking(False)
            try:
                held += 0 if s.recv(1) == b"" else 1
            except BlockingIOError:
                held += 1
            except OSError:
                pass
            s.close()
        print(f"idle flood: 64 idle connections from one address; owner at another address: {owner}; held after 20 s: {held}")
        # 2. spread guessing
        statuses = []
        for a in range(10, 30):
            try: statuses.append(http(web, f"127.0.0.{a}", "POST", "/login", "password=guess"))
            except OSError: statuses.append(0)
        st = http(web, "127.0.0.40", "POST", "/login", login)
        print(f"spread guessing: 20 addresses, one guess each: {statuses.count(401)} checked (401), {statuses.count(429)} refused (429); "
              f"right password from a new address then: {st}")
    finally:
        edge.terminate(); edge.wait(10)

if __name__ == "__main__":
    main()
