#!/usr/bin/env python3
"""Wait until every peer's htable holds KEYS items, or until none has grown
for STALL seconds; sample the writer's shared memory in use meanwhile.

  ht_wait.py --keys N [--table t] [--stall-s 15] [--interval-ms 5]
             [--writer SOCK] PEER_SOCK...

Polls over persistent binrpc connections (binrpc.py): one poll costs the
polled instance a few tens of microseconds, not a kamcmd process. Prints
one JSON object: done_ms (epoch ms when the last peer was complete, or
when the wait gave up), got (items per peer, in order), shm_used_peak.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import binrpc  # noqa: E402


def items(c, table):
    for t in c.call("htable.stats"):
        if isinstance(t, dict) and t.get("name") == table:
            return int(t.get("all", 0))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, required=True)
    ap.add_argument("--table", default="t")
    ap.add_argument("--stall-s", type=float, default=15.0)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    ap.add_argument("--writer")
    ap.add_argument("peers", nargs="+")
    a = ap.parse_args()
    peers = [binrpc.Client(p) for p in a.peers]
    writer = binrpc.Client(a.writer) if a.writer else None
    got = [0] * len(peers)
    seen = [False] * len(peers)
    shm_peak = 0
    grow_deadline = time.monotonic() + a.stall_s
    while True:
        pending = [i for i in range(len(peers)) if got[i] < a.keys]
        if not pending:
            break
        for i in pending:
            n = items(peers[i], a.table)
            if seen[i] and n != got[i]:
                grow_deadline = time.monotonic() + a.stall_s
            seen[i] = True
            got[i] = n
        if writer is not None:
            shm = writer.call("core.shmmem")[0].get("used", 0)
            shm_peak = max(shm_peak, int(shm))
        if time.monotonic() > grow_deadline:
            break
        time.sleep(a.interval_ms / 1000.0)
    done_ms = int(time.time() * 1000)
    print(json.dumps({"done_ms": done_ms, "got": got, "shm_used_peak": shm_peak}))


if __name__ == "__main__":
    main()
