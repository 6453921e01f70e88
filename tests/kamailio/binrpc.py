#!/usr/bin/env python3
"""A minimal, persistent binrpc client for Kamailio's ctl module.

kamcmd opens a connection, sends one command and exits: a fork, an exec and
a connect per call. Polling every few milliseconds that way costs the
machine more CPU than the thing it measures. This client keeps one stream
connection per instance open and decodes the reply into Python values
(struct -> dict, array -> list; a struct with a repeated member name keeps
the last value).

Written from the format description in Kamailio's ctl/binrpc.h:

  header  byte 0: magic 0xA << 4 | version 1
          byte 1: flags << 4 | (LL - 1) << 2 | (CL - 1)
          total length (LL bytes, big endian), cookie (CL bytes)
  record  byte 0: S << 7 | size << 4 | type
          S = 0: size is the value's length in bytes;
          S = 1: the next `size` bytes hold the value's length
          (size 0 with S = 1 ends a struct or an array).
          int 0 (big endian), str 1 (NUL-terminated, length counts the NUL),
          double 2 (int, value * 1000), struct 3, array 4, avp 5 (a struct
          member's name, like str, followed by its value), bytes 6.

Usage as a program:  binrpc.py SOCKET METHOD [ARGS...]  (prints JSON)
"""
import json
import os
import socket
import struct
import sys

T_INT, T_STR, T_DOUBLE, T_STRUCT, T_ARRAY, T_AVP, T_BYTES = range(7)
REPLY, FAULT = 1, 3


def _int_bytes(v):
    n = 0
    while v >> (8 * n) and n < 8:
        n += 1
    return v.to_bytes(n, "big") if n else b""


def _record(typ, payload):
    n = len(payload)
    if n < 8 and typ != T_STRUCT:
        return bytes([(n << 4) | typ]) + payload
    lb = _int_bytes(n)
    return bytes([0x80 | (len(lb) << 4) | typ]) + lb + payload


def _enc(v):
    if isinstance(v, int):
        return _record(T_INT, _int_bytes(v & 0xFFFFFFFF))
    return _record(T_STR, str(v).encode() + b"\0")


class Client:
    def __init__(self, path, timeout=3.0):
        self.path = path
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.cookie = int.from_bytes(os.urandom(4), "big")
        self.buf = b""

    def close(self):
        self.s.close()

    def call(self, method, *args):
        self.cookie = (self.cookie + 1) & 0xFFFFFFFF
        body = _enc(method) + b"".join(_enc(a) for a in args)
        tl = len(body).to_bytes(4, "big")
        hdr = bytes([0xA1, (0 << 4) | (3 << 2) | 3]) + tl + struct.pack(">I", self.cookie)
        self.s.sendall(hdr + body)
        flags, body = self._read_pkt()
        vals = _decode(body)
        if flags == FAULT:
            raise RuntimeError(f"{method}: fault {vals}")
        return vals

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("binrpc: connection closed")
            self.buf += chunk

    def _read_pkt(self):
        self._need(2)
        if self.buf[0] != 0xA1:
            raise ValueError("binrpc: bad magic/version")
        flags = self.buf[1] >> 4
        ll = ((self.buf[1] >> 2) & 3) + 1
        cl = (self.buf[1] & 3) + 1
        self._need(2 + ll + cl)
        tl = int.from_bytes(self.buf[2:2 + ll], "big")
        start = 2 + ll + cl
        self._need(start + tl)
        body = self.buf[start:start + tl]
        self.buf = self.buf[start + tl:]
        return flags, body


def _decode(b):
    out, pos = [], 0
    while pos < len(b):
        v, pos, end = _value(b, pos)
        if end:
            raise ValueError("binrpc: stray end tag")
        out.append(v)
    return out


def _value(b, pos):
    h = b[pos]
    pos += 1
    s, size, typ = h >> 7, (h >> 4) & 7, h & 0xF
    if typ in (T_STRUCT, T_ARRAY):
        if s == 1:
            return None, pos, True
        if typ == T_ARRAY:
            items = []
            while True:
                v, pos, end = _value(b, pos)
                if end:
                    return items, pos, False
                items.append(v)
        d = {}
        while True:
            name, pos, end = _value(b, pos)
            if end:
                return d, pos, False
            v, pos, _ = _value(b, pos)
            d[name] = v
    if s == 1:
        n = int.from_bytes(b[pos:pos + size], "big")
        pos += size
    else:
        n = size
    raw = b[pos:pos + n]
    pos += n
    if typ == T_INT:
        v = int.from_bytes(raw, "big", signed=False)
        if n and raw[0] & 0x80:
            v -= 1 << (8 * n)
        return v, pos, False
    if typ == T_DOUBLE:
        v = int.from_bytes(raw, "big", signed=True) if n else 0
        return v / 1000.0, pos, False
    if typ in (T_STR, T_AVP):
        return raw.rstrip(b"\0").decode(errors="replace"), pos, False
    return bytes(raw), pos, False


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: binrpc.py SOCKET METHOD [ARGS...]")
    c = Client(sys.argv[1])
    args = [int(a) if a.lstrip("-").isdigit() else a for a in sys.argv[3:]]
    print(json.dumps(c.call(sys.argv[2], *args), indent=1))
