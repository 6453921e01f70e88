#!/usr/bin/env python3
"""A call through a Kamailio proxy for the dialog test: this process is both
the caller (UAC) and the callee (UAS), on 127.0.0.1, UDP.

  sipcall.py PROXY_IP PROXY_PORT BYE_FILE [--timeout S]

INVITE sip:bob@127.0.0.1:<uas> via the proxy; the UAS answers 200 OK; the
UAC sends ACK (loose routing through the Record-Route). Prints
"CONFIRMED <call-id>", then waits (bounded) until BYE_FILE exists, sends BYE
through the proxy, prints "BYE <code>". Exit 0 on success.
"""
import random
import re
import select
import socket
import sys
import time
import os


def parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    hdrs = []
    for ln in lines[1:]:
        if ":" in ln:
            n, v = ln.split(":", 1)
            hdrs.append((n.strip(), v.strip()))
    return lines[0], hdrs, body


def hget(hdrs, name):
    return [v for n, v in hdrs if n.lower() == name.lower()]


def main():
    pip, pport, byefile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    timeout = 20.0
    uac = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uac.bind(("127.0.0.1", 0))
    uas = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    uas.bind(("127.0.0.1", 0))
    up, sp = uac.getsockname()[1], uas.getsockname()[1]
    callid = "call-%08x@127.0.0.1" % random.getrandbits(32)
    ftag = "%08x" % random.getrandbits(32)
    ttag = "%08x" % random.getrandbits(32)
    ruri = "sip:bob@127.0.0.1:%d" % sp
    proxy = (pip, pport)

    def req(method, uri, cseq, extra, to_tag=None):
        br = "z9hG4bK%08x" % random.getrandbits(32)
        to = "<sip:bob@127.0.0.1>" + (";tag=" + to_tag if to_tag else "")
        lines = ["%s %s SIP/2.0" % (method, uri),
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (up, br),
                 "Max-Forwards: 70",
                 "From: <sip:alice@127.0.0.1>;tag=%s" % ftag,
                 "To: %s" % to, "Call-ID: %s" % callid,
                 "CSeq: %d %s" % (cseq, method),
                 "Contact: <sip:alice@127.0.0.1:%d>" % up] + extra + ["Content-Length: 0"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    deadline = time.monotonic() + timeout
    inv = req("INVITE", ruri, 1, [])
    uac.sendto(inv, proxy)
    resend = time.monotonic() + 0.5
    rr = []
    confirmed = False
    while not confirmed:
        if time.monotonic() > deadline:
            print("timeout")
            return 2
        r, _, _ = select.select([uac, uas], [], [], 0.1)
        if not r and time.monotonic() > resend:
            uac.sendto(inv, proxy)
            resend = time.monotonic() + 1.0
        for s in r:
            data, src = s.recvfrom(65535)
            first, hdrs, _ = parse(data)
            if s is uas and first.startswith("INVITE"):
                vias = hget(hdrs, "Via")
                rrs = hget(hdrs, "Record-Route")
                to = hget(hdrs, "To")[0]
                if "tag=" not in to:
                    to += ";tag=" + ttag
                lines = ["SIP/2.0 200 OK"] + ["Via: " + v for v in vias] + \
                        ["Record-Route: " + v for v in rrs] + \
                        ["From: " + hget(hdrs, "From")[0], "To: " + to,
                         "Call-ID: " + callid, "CSeq: 1 INVITE",
                         "Contact: <%s>" % ruri, "Content-Length: 0"]
                s.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), src)
            elif s is uac and first.startswith("SIP/2.0 200"):
                rr = hget(hdrs, "Record-Route")
                routes = ["Route: " + v for v in rr]
                uac.sendto(req("ACK", ruri, 1, routes, ttag), proxy)
                confirmed = True
            elif s is uac and re.match(r"SIP/2.0 [3-6]", first):
                print("failed " + first)
                return 1
    print("CONFIRMED " + callid, flush=True)
    bdeadline = time.monotonic() + 60
    while not os.path.exists(byefile):
        if time.monotonic() > bdeadline:
            print("no bye file")
            return 2
        # answer retransmitted INVITEs / ACKs arriving at the UAS meanwhile
        r, _, _ = select.select([uas], [], [], 0.05)
        for s in r:
            s.recvfrom(65535)
    routes = ["Route: " + v for v in rr]
    bye = req("BYE", ruri, 2, routes, ttag)
    uac.sendto(bye, proxy)
    deadline = time.monotonic() + timeout
    while True:
        if time.monotonic() > deadline:
            print("BYE timeout")
            return 2
        r, _, _ = select.select([uac, uas], [], [], 0.1)
        for s in r:
            data, src = s.recvfrom(65535)
            first, hdrs, _ = parse(data)
            if s is uas and first.startswith("BYE"):
                lines = ["SIP/2.0 200 OK"] + ["Via: " + v for v in hget(hdrs, "Via")] + \
                        ["From: " + hget(hdrs, "From")[0], "To: " + hget(hdrs, "To")[0],
                         "Call-ID: " + callid, "CSeq: 2 BYE", "Content-Length: 0"]
                s.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), src)
            elif s is uac and first.startswith("SIP/2.0 ") and "BYE" in hget(hdrs, "CSeq")[0]:
                code = int(first.split()[1])
                if code >= 200:
                    print("BYE %d" % code)
                    return 0 if code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
