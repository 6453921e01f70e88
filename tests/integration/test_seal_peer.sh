#!/usr/bin/env bash
# Sealed clusters of dmq-peer processes on loopback (docs/security.md):
# key-file errors (line numbers, no key material echoed); three peers with
# one key and a label converge and deliver a reliable message; a peer with
# the wrong key, one with the wrong label and one without a key never join,
# and the cluster logs and counts why (key_unknown, label, plaintext); then
# a live key rotation through `keys reload` (add the new key everywhere,
# make it primary everywhere, remove the old one) with no death and
# messages delivered after every step.
#
# Ports are picked by the kernel (--bind 127.0.0.1:0). Bounded by
# WATCHDOG_S; the EXIT trap (scripts/lib/dmq-test.sh) kills every peer it
# started (by PID).
set -uo pipefail
# shellcheck source=scripts/lib/dmq-test.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib/dmq-test.sh"

WATCHDOG_S=150
WAIT_S=10
NOJOIN_S=6 # how long an outsider is given to (not) join (it warns at 5 s)

dt_peer_test test_seal_peer dmq-seal-test "$WATCHDOG_S" "$WAIT_S"

k1=$(dt_hexkey)
k2=$(dt_hexkey)
kx=$(dt_hexkey)
printf '# cluster key\n\n  %s  \n' "$k1" >"$tmp/k1"
printf '%s\n' "$kx" >"$tmp/kx"
chmod 600 "$tmp/k1" "$tmp/kx"

# ---------------------------------------------------------------------------
# 1. arguments and key files
# ---------------------------------------------------------------------------
printf '# a comment\n%s\n%s0\n' "$k1" "$k2" >"$tmp/bad_long"
dt_expect_exit 2 "key of 65 characters" --name a --bind 127.0.0.1:0 --key-file "$tmp/bad_long"
grep -q "bad_long:3: expected 64 hex characters" "$tmp/args.err" ||
  fail "bad key line: no file:line message ($(cat "$tmp/args.err"))"
grep -q "$k2" "$tmp/args.err" && fail "bad key line: key material echoed"
printf '%s\n' "${k1:0:63}z" >"$tmp/bad_hex"
dt_expect_exit 2 "non-hex key" --name a --bind 127.0.0.1:0 --key-file "$tmp/bad_hex"
grep -q "bad_hex:1: .*not all hex" "$tmp/args.err" || fail "non-hex key: $(cat "$tmp/args.err")"
printf '# nothing\n' >"$tmp/empty"
dt_expect_exit 2 "no key" --name a --bind 127.0.0.1:0 --key-file "$tmp/empty"
printf '%s\n%s\n' "$k1" "$k1" >"$tmp/dup"
dt_expect_exit 2 "a key twice" --name a --bind 127.0.0.1:0 --key-file "$tmp/dup"
dt_expect_exit 2 "missing file" --name a --bind 127.0.0.1:0 --key-file "$tmp/nope"
dt_expect_exit 2 "mode without key" --name a --bind 127.0.0.1:0 --seal-mode required
dt_expect_exit 2 "bad mode" --name a --bind 127.0.0.1:0 --key-file "$tmp/k1" --seal-mode on
dt_expect_exit 2 "label with a blank" --name a --bind 127.0.0.1:0 --label "a b"
ok "key file and option errors exit 2 with file:line, no key echoed"

# ---------------------------------------------------------------------------
# 2. a sealed, labelled cluster
# ---------------------------------------------------------------------------
start() { # NAME ARGS...: on loopback, profile fast
  dt_peer_start "$1" --bind 127.0.0.1:0 --profile fast "${@:2}"
}
for i in 1 2 3; do cp "$tmp/k1" "$tmp/key$i"; done
start p1 --key-file "$tmp/key1" --label blue --channel kv
seed=$(check get "$tmp/p1.log" ready addr) || fail "p1: no address"
seed=${seed#*://}
start p2 --key-file "$tmp/key2" --label blue --seed "$seed" --channel kv
start p3 --key-file "$tmp/key3" --label blue --seed "$seed" --channel kv
three=("p1 alive" "p2 alive" "p3 alive")
for n in p1 p2 p3; do
  dt_wait_until "$WAIT_S" "$n sees three" dt_listing_is "$n" "${three[@]}"
done
grep -q "seal mode required" "$tmp/p1.err" || fail "p1: no key summary on stderr"
grep -q "$k1" "$tmp/p1.err" && fail "p1: key material on stderr"

more_than() { # N COUNT-ARGS...: the count of check count ARGS exceeds N
  local n=$1
  shift
  (($(check count "$@") > n))
}
send_ok() { # FROM TO TEXT: a reliable send, received and delivered
  local before
  before=$(check count "$tmp/$1.log" outcome outcome=delivered dest="$2")
  dt_send "$1" "send $2 kv $3"
  dt_wait_until "$WAIT_S" "$3 received" check event "$tmp/$2.log" message text="$3"
  dt_wait_until "$WAIT_S" "$3 delivered" more_than "$before" "$tmp/$1.log" outcome outcome=delivered dest="$2"
}
send_ok p2 p1 sealed-hello
ok "three peers with one key and a label converge and deliver"

# ---------------------------------------------------------------------------
# 3. outsiders: wrong key, wrong label, no key
# ---------------------------------------------------------------------------
start wkey --key-file "$tmp/kx" --label blue --seed "$seed"
start wlab --key-file "$tmp/k1" --label red --seed "$seed"
start nokey --label blue --seed "$seed"
sleep "$NOJOIN_S"
for n in wkey wlab nokey; do
  dt_listing_is "$n" "$n alive" || fail "$n: joined, or saw others ($(check listing "$tmp/$n.log"))"
done
dt_listing_is p1 "${three[@]}" || fail "p1: an outsider got in ($(check listing "$tmp/p1.log"))"
dt_send p1 stats
dt_wait_until "$WAIT_S" "p1 stats" check event "$tmp/p1.log" stats
for r in key_unknown label plaintext; do
  v=$("$dt_py" -c 'import json,sys
ev=[json.loads(l) for l in open(sys.argv[1]) if "\"stats\"" in l][-1]
print(ev["drops"][sys.argv[2]])' "$tmp/p1.log" "$r") || fail "p1 stats: no drops.$r"
  ((v > 0)) || fail "p1: no $r drop counted"
done
grep -q "not in our keyring (wrong key?)" "$tmp/p1.err" || fail "p1: no wrong-key log line"
grep -q "cluster label mismatch" "$tmp/p1.err" || fail "p1: no label log line"
grep -q "encryption is required" "$tmp/p1.err" || fail "p1: no plaintext log line"
grep -q "not joined 5 s after start" "$tmp/wkey.err" || fail "wkey: no 'not joined' line"
for n in wkey wlab nokey; do
  kill -TERM "${dt_pid[$n]}"
  dt_wait_exit "${dt_pid[$n]}" 5 || fail "$n: did not exit"
  dt_forget "$n"
done
ok "wrong key, wrong label and no key never join; counted and logged"

# ---------------------------------------------------------------------------
# 4. live rotation: k1 -> k2 in three steps, messages after each
# ---------------------------------------------------------------------------
step() { # WHAT FILE-CONTENT
  local what=$1 n
  shift
  for n in p1 p2 p3; do
    printf '%s\n' "$@" >"$tmp/key${n#p}"
    local before
    before=$(check count "$tmp/$n.log" ok command=keys)
    dt_send "$n" "keys reload"
    dt_wait_until "$WAIT_S" "$n: $what" more_than "$before" "$tmp/$n.log" ok command=keys
  done
}
step "add k2" "$k1" "$k2"
send_ok p3 p2 after-add
step "k2 primary" "$k2" "$k1"
send_ok p1 p3 after-primary
step "remove k1" "$k2"
send_ok p2 p1 after-remove
sleep 1
for n in p1 p2 p3; do
  dt_wait_until "$WAIT_S" "$n sees three after rotation" dt_listing_is "$n" "${three[@]}"
  check saw "$tmp/$n.log" p1 dead && fail "$n: saw p1 dead during rotation"
  check saw "$tmp/$n.log" p2 dead && fail "$n: saw p2 dead during rotation"
  check saw "$tmp/$n.log" p3 dead && fail "$n: saw p3 dead during rotation"
done
dt_send p2 keys
dt_wait_until "$WAIT_S" "p2 keys" check event "$tmp/p2.log" keys
id2=$(check get "$tmp/p2.log" keys primary) || fail "p2: no keys event"
ids=$(check get "$tmp/p2.log" keys ids)
[[ $ids == "[\"$id2\"]" ]] || fail "p2: keyring after rotation is $ids, want [\"$id2\"]"
ok "key rotation (add, primary, remove) with no death, messages delivered"

for n in p1 p2 p3; do dt_send "$n" quit; done
for n in p1 p2 p3; do
  dt_wait_exit "${dt_pid[$n]}" 5 || fail "$n: did not quit"
  dt_forget "$n"
done
"$dt_py" "$dt_lib/dmq_test.py" log valid "$tmp"/*.log || fail "a peer printed a line that is not a JSON event"
echo "$name: PASS"
