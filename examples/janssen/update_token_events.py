# authstat token events: a Janssen "update token" interception script (Jython 2.7) that appends
# one JSON line per issued token to a file authstat tails (format: token_events), because the
# audit log carries no grant type or token type. Format: docs/token-events.md.
#
# Install: add a custom script of type UPDATE_TOKEN with this file, set the configuration
# property "events_file" (default /opt/jans/jetty/jans-auth/logs/token-events.jsonl), enable it,
# and associate it with the clients to count (or make it apply to all clients). The script never
# changes a token: every method returns True.
from __future__ import print_function

import json
import threading
import time

try:
    from io.jans.model.custom.script.type.token import UpdateTokenType
except ImportError:  # outside Janssen (tests): a stand-in base class
    UpdateTokenType = object

DEFAULT_EVENTS_FILE = "/opt/jans/jetty/jans-auth/logs/token-events.jsonl"


def format_event(timestamp_ms, grant_type, token_type, client_id, username):
    """One event as a JSON line (authstat's token_events format)."""
    event = {
        "timestamp": int(timestamp_ms),
        "grant_type": grant_type,
        "token_type": token_type,
        "client_id": client_id,
    }
    if username:
        event["username"] = username
    return json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n"


def describe_grant(context):
    """(grant_type, client_id, username) of the grant behind a token; refreshes keep the
    original grant's type, as Janssen's own statistics do."""
    grant = context.getGrant()
    grant_type = grant.getGrantType().getValue() if grant.getGrantType() is not None else "unknown"
    client_id = grant.getClientId() or ""
    user = grant.getUser()
    username = user.getUserId() if user is not None else None
    return grant_type, client_id, username


class UpdateToken(UpdateTokenType):
    def __init__(self, currentTimeMillis):
        self.currentTimeMillis = currentTimeMillis
        self.lock = threading.Lock()
        self.events_file = DEFAULT_EVENTS_FILE

    def init(self, customScript, configurationAttributes):
        if configurationAttributes is not None and configurationAttributes.containsKey("events_file"):
            self.events_file = configurationAttributes.get("events_file").getValue2()
        print("authstat token events: writing to %s" % self.events_file)
        return True

    def destroy(self, configurationAttributes):
        return True

    def getApiVersion(self):
        return 11

    def record(self, token_type, context):
        try:
            grant_type, client_id, username = describe_grant(context)
            line = format_event(time.time() * 1000, grant_type, token_type, client_id, username)
            self.lock.acquire()
            try:
                with open(self.events_file, "a") as f:
                    f.write(line)
            finally:
                self.lock.release()
        except Exception as e:  # never break token issuance over statistics
            print("authstat token events: not recorded: %s" % e)

    def modifyIdToken(self, jsonWebResponse, context):
        self.record("id_token", context)
        return True

    def modifyAccessToken(self, accessToken, context):
        self.record("access_token", context)
        return True

    def modifyRefreshToken(self, refreshToken, context):
        self.record("refresh_token", context)
        return True

    def getRefreshTokenLifetimeInSeconds(self, context):
        return 0

    def getIdTokenLifetimeInSeconds(self, context):
        return 0

    def getAccessTokenLifetimeInSeconds(self, context):
        return 0
