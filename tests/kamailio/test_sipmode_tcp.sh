#!/usr/bin/env bash
# SIP mode over TCP (modparam transport "sip-tcp"): test_sipmode.sh with the
# KDMQ requests on TCP connections through Kamailio's tcp_main, and without
# the bind modparam (KT_SIP_NO_BIND: members named after their SIP address).
KT_TRANSPORT=sip-tcp KT_SIP_NO_BIND=1 exec bash "$(dirname "$0")/test_sipmode.sh"
