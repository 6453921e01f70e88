#!/usr/bin/env python3
"""Tiny SIP client for the Kamailio tests: send one request over UDP and wait
(bounded) for its final response; print the status code, exit 0 on 2xx.

  sipsend.py HOST PORT METHOD RURI [-H 'Name: value']... [--body TEXT]
             [--from URI] [--to URI] [--contact URI] [--expires N]
             [--timeout S] [--local IP]
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
    ap.add_argument("method")
    ap.add_argument("ruri")
    ap.add_argument("-H", dest="headers", action="append", default=[])
    ap.add_argument("--body", default="")
    ap.add_argument("--ctype", default="text/plain")
    ap.add_argument("--from", dest="frm", default="sip:tester@127.0.0.1")
    ap.add_argument("--to", default=None)
    ap.add_argument("--contact", default=None)
    ap.add_argument("--expires", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--local", default="127.0.0.1")
    ap.add_argument("--no-resend", action="store_true",
                    help="send once (the request is not idempotent)")
    a = ap.parse_args()

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.local, 0))
    lport = s.getsockname()[1]
    branch = "z9hG4bK%08x" % random.getrandbits(32)
    callid = "%08x@%s" % (random.getrandbits(32), a.local)
    tag = "%08x" % random.getrandbits(32)
    to = a.to or a.ruri
    body = a.body.encode()
    lines = [
        "%s %s SIP/2.0" % (a.method, a.ruri),
        "Via: SIP/2.0/UDP %s:%d;branch=%s;rport" % (a.local, lport, branch),
        "Max-Forwards: 70",
        "From: <%s>;tag=%s" % (a.frm, tag),
        "To: <%s>" % to,
        "Call-ID: %s" % callid,
        "CSeq: 1 %s" % a.method,
    ]
    if a.contact:
        lines.append("Contact: <%s>" % a.contact)
    if a.expires is not None:
        lines.append("Expires: %d" % a.expires)
    lines += a.headers
    if body:
        lines.append("Content-Type: %s" % a.ctype)
    lines.append("Content-Length: %d" % len(body))
    msg = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    s.sendto(msg, (a.host, a.port))
    deadline = time.monotonic() + a.timeout
    resend = time.monotonic() + 0.5
    while True:
        now = time.monotonic()
        if now >= deadline:
            print("timeout")
            return 2
        s.settimeout(max(0.01, min(deadline, resend) - now))
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            if not a.no_resend and time.monotonic() >= resend:
                s.sendto(msg, (a.host, a.port))
                resend = time.monotonic() + 1.0
            continue
        first = data.split(b"\r\n", 1)[0].decode(errors="replace")
        parts = first.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        code = int(parts[1])
        if code < 200:
            continue
        print(code)
        return 0 if 200 <= code < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
