#!/usr/bin/env python3
"""Commit-to-visible lag of a read replica: files a theft report of a fresh IMEI on the central
(the 201 means it is committed), then asks the replica for that IMEI's status until it answers
BLACKLISTED; the lag is the time between the two. Every PERIOD seconds, for SECONDS; prints
JSON with p50/p99/max in milliseconds. Runs beside whatever load the caller starts.

    replication_lag.py CENTRAL_ADDR REPLICA_ADDR OPERATOR_TOKEN SECONDS [PERIOD] [FIRST]

SIGTERM ends it early (it still prints what it measured).
"""
import http.client
import json
import signal
import sys
import time

central, replica, token, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
period = float(sys.argv[5]) if len(sys.argv) > 5 else 0.02
first = int(sys.argv[6]) if len(sys.argv) > 6 else 0


def imei(n):
    """The n-th IMEI of TAC 99000001 (none of the dataset's), with its Luhn digit."""
    body = f"99000001{n:06d}"
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


def conn(addr):
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=30)


stopping = []
signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
c, r = conn(central), conn(replica)
lags, started, n = [], time.monotonic(), first
while time.monotonic() - started < seconds and not stopping:
    tick = time.monotonic()
    number = imei(n)
    n += 1
    body = json.dumps({"imei": number, "kind": "stolen", "reported_by": "user",
                       "subscriber_id": "79555123", "reference": "LAG-1",
                       "occurred_at": "2026-11-20T18:30:00Z"})
    c.request("POST", "/v1/reports", body, {"authorization": f"Bearer {token}",
                                             "content-type": "application/json"})
    answer = c.getresponse()
    answer.read()
    if answer.status != 201:
        sys.exit(f"report of {number}: {answer.status}")
    committed = time.monotonic()
    while True:
        r.request("GET", f"/v1/imeis/{number}/status")
        reply = r.getresponse()
        status = json.loads(reply.read())["status"]
        if status == "BLACKLISTED":
            lags.append((time.monotonic() - committed) * 1000)
            break
        if time.monotonic() - committed > 60:
            sys.exit(f"{number} not visible on the replica after 60 s")
    rest = period - (time.monotonic() - tick)
    if rest > 0:
        time.sleep(rest)
lags.sort()
pick = lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 2)
print(json.dumps({"probes": len(lags), "p50_ms": pick(0.5), "p99_ms": pick(0.99),
                  "max_ms": round(lags[-1], 2), "next": n}))
