#!/usr/bin/env bash
# dmqlib's key_file, label and seal_mode with real Kamailio instances on
# loopback, profile "fast":
#   1. a key file with a bad line stops Kamailio at start-up, naming the
#      file and line (and never echoing the key);
#   2. two instances with one key and a label form a cluster and replicate
#      an htable value (every packet sealed);
#   3. an instance with another key never joins them, and the others log
#      why ("... not in our keyring (wrong key?)");
#   4. a live key rotation through dmqlib.keys_reload (add the new key
#      everywhere, make it primary everywhere, remove the old one): the two
#      instances stay members of each other and keep replicating; a bad
#      file is refused by the RPC and changes nothing.
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup seal

hexkey() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }
key=$(hexkey)
(
  umask 077
  printf '# cluster key\n%s\n' "$key" >"$KT_DIR/cluster.key"
  printf '%s\n' "$(hexkey)" >"$KT_DIR/wrong.key"
  printf '# too short\n%s\n' "${key:0:40}" >"$KT_DIR/bad.key"
)
sealed() { # KEYFILE: the modparams of a sealed, labelled instance
  KT_EXTRA_MODULES=("modparam(\"dmqlib\", \"key_file\", \"$1\")"
    'modparam("dmqlib", "label", "kamtest")'
    'modparam("dmqlib", "seal_mode", "required")')
}
exited() { ! kt_alive "$1"; }

# 1. a bad key file
sealed "$KT_DIR/bad.key"
kt_start s0 127.0.0.86 dmqlib ""
if ! kt_wait 15000 "s0 stops" exited s0; then
  kt_fail "s0 runs with a bad key file"
elif grep -q "bad.key:2: expected 64 hex characters" "$KT_DIR/s0/log"; then
  kt_log "1. bad key file refused: $(grep -o "dmqlib: key_file: .*" "$KT_DIR/s0/log" | head -n1)"
else
  kt_fail "s0 stopped without the file:line message"
fi
grep -q "${key:0:40}" "$KT_DIR/s0/log" && kt_fail "s0 logged key material"
kt_reap s0 1000

# 2. a sealed cluster of two
sealed "$KT_DIR/cluster.key"
kt_start s1 127.0.0.81 dmqlib ""
kt_start s2 127.0.0.82 dmqlib 127.0.0.81
for k in s1 s2; do kt_wait_up "$k"; done
for k in s1 s2; do
  kt_wait 10000 "$k sees 2 members alive" kt_alive_count_is "$k" 2 || kt_die "no full view on $k"
done
grep -q "sealing with key id" "$KT_DIR/s1/log" || kt_fail "s1: no 'sealing with key id' line"
kt_rpc s1 htable.seti t sealed 7 >/dev/null
kt_wait 5000 "s2 reads the value" kt_ht_is s2 sealed 7 || kt_fail "s2 did not get the value"
kt_log "2. two sealed instances converge and replicate"

# 3. the wrong key
sealed "$KT_DIR/wrong.key"
kt_start s3 127.0.0.83 dmqlib 127.0.0.81
kt_wait_up s3
sleep 3
kt_alive_count_is s3 1 || kt_fail "s3 (wrong key) sees $(kt_alive_count s3) members"
kt_alive_count_is s1 2 || kt_fail "s1 sees $(kt_alive_count s1) members with s3 around"
kt_wait 5000 "s1 logs the wrong key" grep -q "not in our keyring (wrong key?)" "$KT_DIR/s1/log" ||
  kt_fail "s1 did not log the wrong key"
kt_log "3. wrong key kept out: $(grep -o "libdmq: dropped.*" "$KT_DIR/s1/log" | head -n1)"

# 4. live rotation (s3 gone first: it has the wrong key anyway)
kt_term s3
kt_reap s3 10000
new=$(hexkey)
primary() { kt_rpc "$1" dmqlib.keys | awk '$1=="primary:" {print $2}'; }
step=0
rotate() { # CONTENT DESCRIPTION EXPECTED_KEYS
  step=$((step + 1))
  (umask 077; printf '%s\n' "$1" >"$KT_DIR/cluster.key")
  local k
  for k in s1 s2; do
    kt_rpc "$k" dmqlib.keys_reload | grep -q Reloading || kt_fail "4.$step: $k: reload refused"
    kt_wait 5000 "$k has $3 keys" keys_are "$k" "$3" || kt_fail "4.$step: $k keyring: $(kt_rpc $k dmqlib.keys | tr '\n' ' ')"
  done
  for k in s1 s2; do
    kt_alive_count_is "$k" 2 || kt_fail "4.$step ($2): $k sees $(kt_alive_count $k) members"
  done
  kt_rpc s1 htable.seti t rot "$step" >/dev/null
  kt_wait 5000 "s2 reads rot=$step" kt_ht_is s2 rot "$step" || kt_fail "4.$step ($2): s2 did not get rot=$step"
  kt_log "4.$step $2: s1 primary $(primary s1), s2 primary $(primary s2), replicating"
}
keys_are() { [[ $(kt_rpc "$1" dmqlib.keys | grep -cE '^[[:space:]]+[0-9a-f]{8}$') -eq $2 ]]; }
rotate "$key"$'\n'"$new" "new key added" 2
rotate "$new"$'\n'"$key" "new key primary" 2
rotate "$new" "old key removed" 1
[[ $(primary s1) == "$(primary s2)" ]] || kt_fail "s1 and s2 seal with different keys"
# a bad file: the RPC says why, the keyring stays
(umask 077; printf 'not-a-key\n' >"$KT_DIR/cluster.key")
out=$(kt_rpc s1 dmqlib.keys_reload)
[[ $out == *"cluster.key:1"* ]] || kt_fail "bad file reload: $out"
keys_are s1 1 || kt_fail "a bad file changed s1's keyring"
kt_log "4. bad file refused: $(echo "$out" | tr '\n' ' ' | cut -c1-120)"
grep -q "$new" "$KT_DIR/s1/log" "$KT_DIR/s2/log" && kt_fail "key material in a log"
for k in s1 s2; do
  grep -E "member 127\.0\.0\.8[12][^ ]* .* (suspect|dead|left)$" "$KT_DIR/$k/log" &&
    kt_fail "$k saw s1 or s2 suspected, dead or left"
done

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
