#!/usr/bin/env python3
"""Send N REGISTERs (users PREFIX0..PREFIX<N-1>) to HOST:PORT from one UDP
socket, at most WINDOW outstanding, and wait (bounded) for every final
response. Prints the number of 2xx answers; exit 0 when all were 2xx.

  sipburst.py HOST PORT N PREFIX [--window 50] [--timeout 30]
"""
import argparse
import random
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("prefix")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    lport = s.getsockname()[1]
    tag = "%08x" % random.getrandbits(32)

    def req(i):
        u = "%s%d" % (a.prefix, i)
        lines = ["REGISTER sip:%s SIP/2.0" % a.host,
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKb%s%d;rport" % (lport, tag, i),
                 "Max-Forwards: 70",
                 "From: <sip:%s@%s>;tag=%s%d" % (u, a.host, tag, i),
                 "To: <sip:%s@%s>" % (u, a.host),
                 "Call-ID: burst-%s-%d@127.0.0.1" % (tag, i),
                 "CSeq: 1 REGISTER",
                 "Contact: <sip:%s@127.0.0.97:%d>" % (u, 10000 + i),
                 "Expires: 600", "Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    pending = {}
    ok = 0
    nxt = 0
    deadline = time.monotonic() + a.timeout
    while (nxt < a.n or pending) and time.monotonic() < deadline:
        while nxt < a.n and len(pending) < a.window:
            s.sendto(req(nxt), (a.host, a.port))
            pending[nxt] = time.monotonic()
            nxt += 1
        s.settimeout(0.2)
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            now = time.monotonic()
            for i, t in list(pending.items()):
                if now - t > 1.0:  # retransmit
                    s.sendto(req(i), (a.host, a.port))
                    pending[i] = now
            continue
        first = data.split(b"\r\n", 1)[0].decode(errors="replace").split(" ")
        if len(first) < 2 or not first[1].isdigit() or int(first[1]) < 200:
            continue
        for ln in data.split(b"\r\n"):
            if ln.lower().startswith(b"call-id:"):
                cid = ln.split(b":", 1)[1].strip().decode()
                i = int(cid.split("@")[0].rsplit("-", 1)[1])
                if i in pending:
                    del pending[i]
                    if 200 <= int(first[1]) < 300:
                        ok += 1
    print(ok)
    return 0 if ok == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
