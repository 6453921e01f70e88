#!/usr/bin/env bash
# Start-up checks of dmqlib's mod_init: Kamailio refuses to start, with a
# clear error, when
#   1. the stock dmq module is loaded too;
#   2. the bind address is not an address of this host;
#   3. the bind port is taken;
#   4. bind is missing; 5. the profile is unknown.
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
kt_setup startup

exited() { ! kt_alive "$1"; }
# expect_refusal NAME MESSAGE: the instance stops by itself, MESSAGE in its log
expect_refusal() {
  if ! kt_wait 15000 "$1 stops" exited "$1"; then
    kt_fail "$1 is running (expected a refusal: $2)"
    return
  fi
  if grep -q "$2" "$KT_DIR/$1/log"; then
    kt_log "$1 refused to start: $(grep -o "dmqlib: .*" "$KT_DIR/$1/log" | grep -m1 "$2")"
  else
    kt_fail "$1 stopped without the message '$2'"
  fi
  kt_reap "$1" 1000
}

KT_EXTRA_MODULES=('loadmodule "tm.so"' 'loadmodule "dmq.so"'
  'modparam("dmq", "server_address", "sip:127.0.0.56:5060")')
kt_start both 127.0.0.56 dmqlib ""
expect_refusal both "the stock 'dmq' module is loaded too"

KT_EXTRA_MODULES=()
kt_cfg badaddr 127.0.0.57 dmqlib ""
sed -i 's/"bind", "127.0.0.57:7946"/"bind", "192.0.2.1:7946"/' "$KT_DIR/badaddr/kamailio.cfg"
kt_start badaddr 127.0.0.57 dmqlib ""
expect_refusal badaddr "cannot bind UDP 192.0.2.1:7946"

python3 -c '
import socket, sys, time, os
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.58", 7946))
open(sys.argv[1], "w").close()
time.sleep(30)
' "$KT_DIR/busy.ready" &
holder=$!
kt_wait 10000 "port holder ready" test -f "$KT_DIR/busy.ready" || kt_die "could not hold the port"
kt_start busy 127.0.0.58 dmqlib ""
expect_refusal busy "cannot bind UDP 127.0.0.58:7946"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

kt_cfg nobind 127.0.0.59 dmqlib ""
sed -i '/"dmqlib", "bind"/d' "$KT_DIR/nobind/kamailio.cfg"
kt_start nobind 127.0.0.59 dmqlib ""
expect_refusal nobind 'modparam("dmqlib", "bind", "host:port") is required'

kt_cfg badprof 127.0.0.60 dmqlib "" turbo
kt_start badprof 127.0.0.60 dmqlib "" turbo
expect_refusal badprof "unknown profile 'turbo'"

if [[ $KT_FAILED -ne 0 ]]; then exit 1; fi
kt_log "PASS"
