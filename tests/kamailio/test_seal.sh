#!/usr/bin/env bash
# dmqlib's key_file, label and seal_mode with real Kamailio instances on
# loopback, profile "fast":
#   1. a key file with a bad line stops Kamailio at start-up, naming the
#      file and line (and never echoing the key);
#   2. two instances with one key and a label form a cluster and replicate
#      an htable value (every packet sealed);
#   3. an instance with another key never joins them, and the others log
#      why ("... not in our keyring (wrong key?)").
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

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
