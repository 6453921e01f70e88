#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

    python3 tests/fuzz/gen_corpus.py        (from the repository root)

Seeds are real packets: the golden packets of tests/unit/wire_golden.h (the
encoder's own output, checked byte for byte by unit_wire_golden) for the
decoder targets, and for the stateful targets (fuzz_world.h) programs whose
operands follow the harness's reading order, e.g. a DATA from n1 on the
live stream, a DEAD about n0 (refuted), a push/pull join by a stranger.
Files are named seed-<what>; regression inputs found by fuzzing are
committed next to them as crash-<what> and never rewritten by this script.
"""
import hashlib
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def golden():
    text = open(os.path.join(ROOT, "tests", "unit", "wire_golden.h")).read()
    body = text[text.index("wire_golden[] = {"):]
    out = {}
    for m in re.finditer(r'\{"([a-z0-9_]+)", (\d+), 0x[0-9a-fA-F]+ULL,((?:\s*"[0-9a-f]*")+)\}', body):
        name, n, hexes = m.group(1), int(m.group(2)), m.group(3)
        h = "".join(re.findall(r'"([0-9a-f]*)"', hexes))
        if len(h) // 2 == n:  # only packets stored whole
            out[name] = bytes.fromhex(h)
    return out


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- msgpack, the few forms the seeds need ----
def mp_str(s):
    b = s.encode() if isinstance(s, str) else s
    return (bytes([0xA0 | len(b)]) if len(b) < 32 else bytes([0xD9, len(b)])) + b


def mp_uint(v):
    if v < 128:
        return bytes([v])
    if v < 256:
        return bytes([0xCC, v])
    if v < 65536:
        return b"\xcd" + struct.pack(">H", v)
    if v < 1 << 32:
        return b"\xce" + struct.pack(">I", v)
    return b"\xcf" + struct.pack(">Q", v)


def mp_bin(b):
    return bytes([0xC4, len(b)]) + b


def mp_arr(n):
    return bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)


def envelope_split(pkt):
    """(message count, message area) of a golden packet."""
    off = 4
    if pkt[3] & 1:
        off = 5 + pkt[4]
    assert pkt[off] == 0x92
    off += 1
    t = pkt[off]
    if 0xA0 <= t <= 0xBF:
        off += 1 + (t & 0x1F)
    elif t == 0xD9:
        off += 2 + pkt[off + 1]
    else:
        raise ValueError("sender")
    t = pkt[off]
    if 0x90 <= t <= 0x9F:
        return t & 0x0F, pkt[off + 1:]
    if t == 0xDC:
        return struct.unpack(">H", pkt[off + 1:off + 3])[0], pkt[off + 3:]
    if t == 0xDD:
        return struct.unpack(">I", pkt[off + 1:off + 5])[0], pkt[off + 5:]
    raise ValueError("msgs")


def record(name, addr, inc, gen, state, meta=b"", chans=None):
    r = mp_arr(7 if chans else 6) + mp_str(name) + mp_str(addr)
    r += mp_uint(inc) + mp_uint(gen) + mp_uint(state) + mp_bin(meta)
    if chans:
        r += mp_arr(len(chans)) + b"".join(mp_str(c) for c in chans)
    return r


# ---- programs for fuzz_world.h ----
RAW, BUILT, BUILT2, MUTATE, TIME, NET, API, HOST = range(8)
N0, N1, N2, X9 = range(4)


def u16(v):
    return struct.pack(">H", v)


def num(v):  # w_pick_num: small values exactly
    return bytes([1, v]) if v < 256 else bytes([2]) + u16(v)


def name(i):  # w_pick_name
    return bytes([i])


def gen(kind=0):  # w_pick_gen: 0 the member's, 2 the member's + 1
    return bytes([kind])


def data_bytes(b, maxlen):
    return u16(len(b) % (maxlen + 1)) + b


def built(sender, *msgs):
    return bytes([BUILT, sender, len(msgs) - 1]) + b"".join(msgs)


def m_ping(seq, target):
    return bytes([0]) + num(seq) + name(target)


def m_ping_req(target, seq, nack):
    return bytes([1]) + name(target) + num(seq) + bytes([nack])


def m_ack(seq):
    return bytes([2]) + num(seq)


def m_nack(seq):
    return bytes([3]) + num(seq)


def m_alive(who, inc, g=0, meta=b"", nch=1):
    return bytes([4]) + name(who) + num(inc) + gen(g) + data_bytes(meta, 32) + bytes([nch])


def m_suspect(who, inc, frm, g=0):
    return bytes([5]) + name(who) + num(inc) + gen(g) + name(frm)


def m_dead(who, inc, frm, g=0):
    return bytes([6]) + name(who) + num(inc) + gen(g) + name(frm)


def m_left(who, inc, g=0):
    return bytes([7]) + name(who) + num(inc) + gen(g)


def m_pushpull(flags, recs):
    out = bytes([8, flags, len(recs)])
    for who, inc, state in recs:
        out += name(who) + num(inc) + gen(0) + bytes([state]) + data_bytes(b"", 16) + bytes([1])
    return out


def m_data(who, flags, seq, payload=b"x", req=0, chan=1, base_is_seq=1, ttl=30000):
    return (bytes([9]) + name(who) + bytes([flags, chan]) + gen(0) + gen(0) + num(seq)
            + bytes([base_is_seq]) + (b"" if base_is_seq else num(1)) + u16(ttl) + num(req)
            + data_bytes(payload, 2000))


def m_dack(who, cum, sack=0, rwnd=64, rej=()):
    out = bytes([10]) + name(who) + gen(0) + gen(0) + num(cum)
    out += bytes([1]) + struct.pack(">Q", sack) if sack else bytes([0])
    out += u16(rwnd) + bytes([len(rej)])
    for s, r in rej:
        out += num(s) + bytes([r])
    return out + u16(5)


def time_(steps, t=255):
    return bytes([TIME, t]) * steps


def api_send(to, length, reliable=True):
    return bytes([API, 0 if reliable else 2, to]) + u16(length)


def raw(sender, pkt):
    return bytes([RAW, sender]) + data_bytes(pkt, 2048)


# sealed packets (src/seal.h, docs/wire.md "Sealed packets"); the keys of
# fuzz_seal.c
KEY_A = b"seal-fuzz-key-a-0123456789abcdef"
KEY_C = b"seal-fuzz-key-c-not-in-the-ring!"


def key_id(key):
    return hashlib.blake2b(b"dmq key id v1", key=key, digest_size=16).digest()[:4]


def seal_aesgcm(key, plain_pkt, gen, pn, session=bytes(range(16)), label=b""):
    """A plain packet (no label) sealed with AES-256-GCM, as dmq__seal_close
    does it: None when the `cryptography` module is missing."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return None
    flags = 0x02 | (0x01 if label else 0)
    head = plain_pkt[:3] + bytes([flags])
    if label:
        head += bytes([len(label)]) + label
    hdr = bytes([2]) + key_id(key) + struct.pack(">QQ", gen, pn) + session
    sub = hashlib.blake2b(b"dmq aes256gcm session v1" + session, key=key,
                          digest_size=32).digest()
    nonce = b"\x00" * 4 + struct.pack(">Q", pn)
    ad = head + hdr
    return ad + AESGCM(sub).encrypt(nonce, plain_pkt[4:], ad)


def seal_seeds(g):
    """fuzz_seal.c: mode byte, then its input."""
    for k in ("ping", "alive", "data", "dack", "pushpull"):
        if k in g:
            write("seal", "raw_plain_" + k, b"\x00" + g[k])
    for k in ("ping", "data"):
        if k not in g:
            continue
        pkt = seal_aesgcm(KEY_A, g[k], 5, 1, label=b"fz")
        if pkt is not None:
            write("seal", "raw_aesgcm_" + k, b"\x00" + pkt)
            bad = bytearray(pkt)
            bad[-1] ^= 1
            write("seal", "raw_aesgcm_bad_tag_" + k, b"\x00" + bytes(bad))
        pkt = seal_aesgcm(KEY_C, g[k], 5, 2 | 2**63)
        if pkt is not None:
            write("seal", "raw_unknown_key_" + k, b"\x00" + pkt)
    # a header that names key a with XChaCha20-Poly1305, and garbage after
    write("seal", "raw_xchacha_forged", b"\x00DQ\x01\x02\x01" + key_id(KEY_A) +
          struct.pack(">QQ", 1, 1) + bytes(16) + b"\x92\xa1x\x90" + bytes(16))
    # SEALED: [how: key, path, alg][gen u64][pn u64][label len][label]
    # [name len][name][n msgs][msgs ...][edits ...]
    def sealed(how, label, msgs, edits=b""):
        return (b"\x01" + bytes([how]) + struct.pack(">QQ", 7, 41) +
                bytes([len(label)]) + label + bytes([3]) + b"\x00\x01\x02" +
                bytes([len(msgs) - 1]) + b"".join(msgs) + edits)
    ack = b"\x00" + struct.pack(">I", 9)
    data = b"\x03" + struct.pack(">QQI", 1, 2, 3) + struct.pack(">H", 5) + b"hello"
    write("seal", "sealed_xchacha", sealed(0, b"", [ack, data]))
    write("seal", "sealed_aesgcm_label", sealed(8, b"ab", [data]))
    write("seal", "sealed_stream_key_b", sealed(1 | 4, b"", [ack]))
    write("seal", "sealed_unknown_key", sealed(2, b"", [ack]))
    # edits: [n-1][where][at][xor]... [tail op]
    write("seal", "sealed_edits", sealed(0, b"x", [ack, data],
          b"\x00\x01\x05\x01\x00" + b"\x00\x03\x02\x80\x01" +
          b"\x01\x02\x00\x07\xff\x00\x01\x00\x00\x00"))
    # REPLAY: [b = who | gen-choice << 3 | kind << 4 | path << 6] ...
    seq = bytes([0x08 | 0x00]) * 8 + bytes([0x08 | 0x10, 0xfd, 0x08 | 0x20, 3])
    seq += bytes([0x09, 0x49, 0x01, 2, 0x08 | 0x30]) + struct.pack(">Q", 1000)
    write("seal", "replay_basic", b"\x02" + seq * 4)


def main():
    g = golden()
    if not g:
        sys.exit("gen_corpus.py: no golden packets found")
    small = {k: v for k, v in g.items() if len(v) <= 2048}

    # decoders
    for k, pkt in g.items():
        write("envelope", k, pkt)
        write("wire", k, pkt)
        n, area = envelope_split(pkt)
        if n < 256:
            write("msgs", k, bytes([n]) + area)
    recs = [record("n1", "host:n1", 1, 200, 0, b"m", ["c"]),
            record("n2", "host:n2", 7, 300, 1),
            record("x9", "udp://192.0.2.9:7946", 2**40, 2**63, 2, b"\x00" * 40),
            record("gone", "host:gone", 3, 5, 3, b"", ["c", "d"])]
    write("pushpull", "four", bytes([1, 4]) + b"".join(recs))
    write("pushpull", "reply", bytes([2, 1]) + recs[0])
    write("pushpull", "none", bytes([0, 0]))

    # stream framing: [mtu][nsplit][splits][frames]
    frames = b"".join(struct.pack(">I", len(p)) + p for p in small.values())
    write("stream", "whole", u16(65535) + bytes([0]) + frames)
    write("stream", "bytewise", u16(65535) + bytes([8]) + b"\x00\x00" * 8 + frames)
    write("stream", "splits", u16(65535) + bytes([4]) + u16(3) + u16(5) + u16(700) + u16(2) + frames)
    write("stream", "over_mtu", u16(100) + bytes([1]) + u16(2) + frames)
    write("stream", "empty_frames", u16(16) + bytes([0]) + b"\x00\x00\x00\x00" * 3 + b"\x00\x00\x00\x05abc")

    # stateful programs (fuzz_node, fuzz_delivery, fuzz_host)
    member = {
        "idle": time_(20),
        "suspect_n1": built(N2, m_suspect(N1, 0, N2)) + time_(12),
        "dead_self_refuted": built(N1, m_dead(N0, 1, N1)) + time_(4),
        "suspect_self": built(N2, m_suspect(N0, 0, N2)) + time_(2),
        "stranger_alive": built(X9, m_alive(X9, 1)) + time_(30),
        "stranger_join": built(X9, m_pushpull(1, [(X9, 1, 0), (N1, 0, 0), (N2, 5, 2)])) + time_(10),
        "pushpull_reply": built(N1, m_pushpull(2, [(N1, 3, 0), (N2, 0, 1), (X9, 0, 3)])),
        "pings": built(N1, m_ping(1, N0), m_ping_req(N2, 2, 1), m_ping(3, X9)) + time_(2),
        "acks": time_(1, 100) + built(N1, m_ack(1), m_nack(1), m_ack(2)) + time_(3),
        "left_n2": built(N2, m_left(N2, 1)) + time_(10),
        "dead_n2_restart": built(N1, m_dead(N2, 0, N1)) + time_(2) + built(N2, m_alive(N2, 0, 2)) + time_(5),
        "lossy": (bytes([NET, 0xF0]) + time_(1, 50)) * 10 + time_(10),
        "reordered": (bytes([NET, 0x31]) + bytes([NET, 0x02])) * 10 + time_(5),
        "mutated": time_(3) + bytes([MUTATE, 0, 2]) + u16(5) + b"\xff" + u16(9) + b"\x00" + b"\x00" + bytes([MUTATE, 1, 1]) + u16(20) + b"\xc1\x03" + u16(3),
        "leave": bytes([API, 9, 0, 0x4C]) + time_(5),
    }
    # the keyed variants (fuzz_*_sealed.c, fuzz_node_transition.c) read the
    # same programs: their BUILT packets are sealed by the harness
    for k, prog in member.items():
        for t in ("node", "node_sealed", "node_transition"):
            write(t, k, prog)
    for k, pkt in small.items():
        write("node", "raw_" + k, raw(N1, pkt))

    M = 0x08  # MORE_FRAGMENTS
    deliv = {
        "idle": time_(10),
        "data_stream": built(N1, m_data(N1, 1, 1), m_data(N1, 1, 2), m_data(N1, 1, 4)) + time_(2),
        "fragments": built(N1, m_data(N1, 1 | M, 1, b"a" * 100), m_data(N1, 1 | M, 2, b"b" * 100, base_is_seq=0), m_data(N1, 1, 3, b"c", base_is_seq=0)) + time_(2),
        "fragment_gap": built(N2, m_data(N2, 1 | M, 2, b"a" * 50, base_is_seq=0), m_data(N2, 1, 3, b"z", base_is_seq=0)) + time_(40),
        "request": built(N1, m_data(N1, 1 | 2, 1, b"q", req=7)) + time_(2),
        "reply": built(N1, m_data(N1, 1 | 4, 1, b"r", req=1)) + time_(2),
        "best_effort": built(N2, m_data(N2, 0, 1), m_data(N2, 0, 5), m_data(N2, 0, 3, chan=0)),
        "dacks": built(N1, m_dack(N1, 1), m_dack(N1, 3, sack=0b1011), m_dack(N1, 2, rej=((1, 1), (2, 2)))) + time_(3),
        "dack_zero_window": built(N2, m_dack(N2, 0, rwnd=0)) + time_(20),
        "stranger_data": built(X9, m_data(X9, 1, 1)) + time_(1),
        "sends": api_send(N1, 5000) + api_send(N2, 10) + api_send(X9, 1) + bytes([API, 3, N1]) + u16(100) + bytes([API, 4, 0]) + u16(2000) + b"\x01" + time_(30),
        "cancel": api_send(N1, 3000) + bytes([API, 5, 0, 0]) + time_(5),
        "paused": bytes([API, 6, 0]) + built(N1, m_data(N1, 0, 1), m_data(N1, 1, 1)) + time_(3),
        "lossy": api_send(N1, 4000) + (bytes([NET, 0xF0]) + time_(1, 30)) * 8 + time_(20),
    }
    for k, prog in deliv.items():
        write("delivery", k, prog)
        write("delivery_sealed", k, prog)
    write("delivery", "raw_data", raw(N1, g["data"]))
    write("delivery", "raw_dack", raw(N1, g["dack"]))

    hostp = {
        "from_strange": bytes([HOST, 0, 9]) + b"udp://x:1" + data_bytes(g["empty"], 1500),
        "from_none": bytes([HOST, 1]) + data_bytes(g["ping_req"], 1500),
        "from_long": bytes([HOST, 0, 135]) + b"host:" + b"a" * 130 + data_bytes(g["alive"], 1500),
        "flush_mtu": bytes([HOST, 2, HOST, 3]) + u16(10) + api_send(N1, 3000) + time_(3) + bytes([HOST, 3]) + u16(65000) + time_(3),
        "mixed": built(N1, m_data(N1, 1, 1)) + bytes([HOST, 0, 7]) + b"host:n1" + data_bytes(g["dack"], 1500) + time_(5),
    }
    for k, prog in hostp.items():
        write("host", k, prog)
        write("host_sealed", k, prog)
    seal_seeds(g)


if __name__ == "__main__":
    main()
