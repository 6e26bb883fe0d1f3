#!/usr/bin/env python3
"""Writes N Janssen audit records to stdout, shaped like a real node's log, for benchmarks.

    gen-audit-varied.py N multi [SEED]     log4j header + pretty-printed JSON (~440 bytes a record)
    gen-audit-varied.py N compact [SEED]   one JSON object per line (~230 bytes)
    gen-audit-varied.py N FORM SEED CLIENTS  with CLIENTS clients (default 8), the first ones
                                           far more often than the last (a few large
                                           applications, many small ones)

Seeded (default seed 1): the same arguments always give the same bytes. Over three months
(2024-01 to 2024-03), with:
- 200,000 distinct users (names of varied length and domain), some much more active than others;
- 8 clients with ids like `2000.<uuid>`;
- client IPs spread over the IPv4 space, about 50,000 distinct;
- USER_AUTHORIZATION about half of the records, ~35 % of them failures, half of those without a
  username; SESSION_AUTHENTICATED, TOKEN_REQUEST, TOKEN_REVOCATION, USER_INFO;
- log4j headers whose time is the record's, with `ForkJoinPool.commonPool-worker-N` threads.
"""
import datetime
import json
import random
import sys
import uuid

n = int(sys.argv[1])
form = sys.argv[2]
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)

n_clients = int(sys.argv[4]) if len(sys.argv) > 4 else 8
clients = ["2000." + str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n_clients)]


def pick_client():
    if n_clients == 8:
        return rng.choice(clients)  # the original draw: the same bytes as before
    return clients[int(rng.random() ** 3 * n_clients)]
domains = ["example.com", "mail.example.org", "corp.example.net", "users.example.io", "x.test"]
first = ["anna", "bob", "chen", "dmitri", "eve", "fatima", "gustav", "hiro", "ines", "jamal",
         "kaito", "lena", "marta", "nikolai", "olga", "pedro", "qin", "rahul", "sofia", "tomas"]


def user_name(uid):
    """A stable name for user `uid` (0..199999), of varied shape and length."""
    r = random.Random(uid * 2654435761)
    shape = uid % 4
    if shape == 0:
        return f"{first[uid % 20]}.{r.choice(first)}{uid}@{domains[uid % 5]}"
    if shape == 1:
        return f"u{uid:06d}"
    if shape == 2:
        return f"{r.choice(first)}_{uid}"
    return f"{first[uid % 20]}{uid}@{domains[(uid // 7) % 5]}"


# Activity is skewed: a tenth of the users make half of the authorizations.
def pick_user():
    if rng.random() < 0.5:
        return rng.randrange(20_000)
    return rng.randrange(200_000)


ips = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
       for _ in range(50_000)]
scopes = ["openid", "openid profile", "openid profile email", "openid profile email jans_stat",
          "openid email address phone"]
actions = (["USER_AUTHORIZATION"] * 50 + ["SESSION_AUTHENTICATED"] * 15 + ["TOKEN_REQUEST"] * 25
           + ["TOKEN_REVOCATION"] * 5 + ["USER_INFO"] * 5)

start = 1704067200000  # 2024-01-01T00:00:00Z
span = 90 * 86_400_000  # three months
step = span / max(n, 1)
out = sys.stdout
buf = []
for i in range(n):
    ts = start + int(i * step) + rng.randrange(0, 1000)
    action = rng.choice(actions)
    success = True
    username = user_name(pick_user())
    if action == "USER_AUTHORIZATION" and rng.random() < 0.35:
        success = False
        if rng.random() < 0.5:
            username = None
    elif action in ("TOKEN_REQUEST", "TOKEN_REVOCATION") and rng.random() < 0.1:
        success = False
    record = {
        "ip": rng.choice(ips),
        "action": action,
        "timestamp": ts,
        "macAddress": "02-42-AC-11-00-02",
        "clientId": pick_client(),
        "username": username,
        "scope": rng.choice(scopes),
        "success": success,
    }
    if form == "multi":
        when = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc)
        header = (f"{when:%Y-%m-%d %H:%M:%S},{ts % 1000:03d} INFO  [02-42-AC-11-00-02] "
                  f"[ForkJoinPool.commonPool-worker-{rng.randrange(1, 16)}]  "
                  "[io.jans.as.server.audit.ApplicationAuditLogger] (ApplicationAuditLogger.java:112) - ")
        buf.append(header + json.dumps(record, indent=2, separators=(",", " : ")) + "\n")
    else:
        buf.append(json.dumps(record, separators=(",", ":")) + "\n")
    if len(buf) == 10000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
