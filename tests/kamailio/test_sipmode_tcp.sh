#!/usr/bin/env bash
# SIP mode over TCP (modparam transport "sip-tcp"): test_sipmode.sh with the
# KDMQ requests on TCP connections through Kamailio's tcp_main.
KT_TRANSPORT=sip-tcp exec bash "$(dirname "$0")/test_sipmode.sh"
