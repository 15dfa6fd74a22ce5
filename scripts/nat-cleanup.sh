#!/usr/bin/env bash
# Removes the NAT chains berth made for the networks under one --root (one chain per
# network, named after its conflist's path; see crates/network/src/nat.rs). For scripts
# that run berth on a temporary root and then delete it: the chains are kernel state and
# would outlive the directory. Other roots' chains are left alone.
#
# Usage: scripts/nat-cleanup.sh ROOT
set -uo pipefail
root=${1:?usage: scripts/nat-cleanup.sh ROOT}
for chain in $(iptables-save -t nat 2>/dev/null | grep -F "berth network $root/" | sed 's/.* -j //' | sort -u); do
    for n in $(iptables -w -t nat -L POSTROUTING -n --line-numbers | awk -v c="$chain" '$2 == c { print $1 }' | sort -rn); do
        iptables -w -t nat -D POSTROUTING "$n" || true
    done
    iptables -w -t nat -F "$chain" 2>/dev/null || true
    iptables -w -t nat -X "$chain" 2>/dev/null || true
done
