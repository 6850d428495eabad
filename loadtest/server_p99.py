#!/usr/bin/env python3
"""Server-side latency quantile from two /metrics snapshots (before, after a phase).

usage: server_p99.py BEFORE AFTER INTERFACE [QUANTILE]
Prints the upper bound (in microseconds) of the histogram bucket holding the quantile of
imeidb_check_duration_seconds{interface=INTERFACE} for the requests between the snapshots.
"""
import re
import sys


def buckets(path, interface):
    out = {}
    pat = re.compile(r'imeidb_check_duration_seconds_bucket\{interface="%s",le="([^"]+)"\} (\d+)' % interface)
    for line in open(path):
        m = pat.match(line)
        if m:
            out[float(m.group(1))] = int(m.group(2))
    return out


before, after = buckets(sys.argv[1], sys.argv[3]), buckets(sys.argv[2], sys.argv[3])
q = float(sys.argv[4]) if len(sys.argv) > 4 else 0.99
total = after[float("inf")] - before.get(float("inf"), 0)
if total == 0:
    print("null")
    sys.exit(0)
for le in sorted(after):
    if after[le] - before.get(le, 0) >= q * total:
        print("%.1f" % (le * 1e6) if le != float("inf") else "inf")
        break
