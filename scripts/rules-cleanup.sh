#!/usr/bin/env bash
# Removes the NAT and forward chains berth made for the networks under one --root (one
# chain of each per network, named after its conflist's path; see
# crates/network/src/rules.rs). For scripts that run berth on a temporary root and then
# delete it: the chains are kernel state and would outlive the directory. Other roots'
# chains are left alone.
#
# Usage: scripts/rules-cleanup.sh ROOT
set -uo pipefail
root=${1:?usage: scripts/rules-cleanup.sh ROOT}
for table_from in nat:POSTROUTING filter:FORWARD; do
    table=${table_from%%:*} from=${table_from#*:}
    for chain in $(iptables-save -t "$table" 2>/dev/null | grep -F "berth network $root/" | sed 's/.* -j //' | sort -u); do
        for n in $(iptables -w -t "$table" -L "$from" -n --line-numbers | awk -v c="$chain" '$2 == c { print $1 }' | sort -rn); do
            iptables -w -t "$table" -D "$from" "$n" || true
        done
        iptables -w -t "$table" -F "$chain" 2>/dev/null || true
        iptables -w -t "$table" -X "$chain" 2>/dev/null || true
    done
done
