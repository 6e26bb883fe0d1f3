#!/usr/bin/env python3
"""Writes N Janssen audit records to stdout, for benchmarks.

    gen-audit.py N multi     log4j header + pretty-printed JSON (about 440 bytes a record)
    gen-audit.py N compact   one JSON object per line

Deterministic: 50,000 distinct users over three months; a mix of actions and outcomes.
"""
import json
import sys

n = int(sys.argv[1])
form = sys.argv[2]
actions = ["USER_AUTHORIZATION", "TOKEN_REQUEST", "SESSION_AUTHENTICATED", "USER_INFO", "TOKEN_VALIDATE"]
start = 1706745600000  # 2024-02-01T00:00:00Z
out = sys.stdout
buf = []
for i in range(n):
    ts = start + i * 7_000  # about 81 days for a million records
    record = {
        "ip": f"10.0.{i % 250}.{i % 200}",
        "action": actions[i % len(actions)],
        "timestamp": ts,
        "macAddress": "02-42-AC-11-00-02",
        "clientId": "2000.7810d591-69d3-458c-9309-4268085fe71c",
        "username": f"user{(i * 7919) % 50000}@example.com" if i % 3 else None,
        "scope": "openid profile email",
        "success": i % 11 != 0,
    }
    if form == "multi":
        header = (f"2024-02-01 00:00:03,{i % 1000:03d} INFO  [02-42-AC-11-00-02] [ForkJoinPool.commonPool-worker-3]  "
                  "[io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:112) - ")
        body = json.dumps(record, indent=2, separators=(",", " : "))
        buf.append(header + body + "\n")
    else:
        buf.append(json.dumps(record, separators=(",", ":")) + "\n")
    if len(buf) == 10000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
