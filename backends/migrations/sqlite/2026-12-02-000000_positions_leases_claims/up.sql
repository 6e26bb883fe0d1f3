-- Opaque source positions (replacing file checkpoints, which are carried over), node leases
-- (one agent per node id) and cluster-wide claims (a file counted by one node only).
ALTER TABLE authstat_nodes ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;      -- grows with every claim
ALTER TABLE authstat_nodes ADD COLUMN holder TEXT;                           -- JSON: id, host, pid, started_at_ms
ALTER TABLE authstat_nodes ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE authstat_nodes ADD COLUMN released INTEGER NOT NULL DEFAULT 0;   -- 1 after a clean stop
CREATE TABLE IF NOT EXISTS authstat_positions (
    node_id TEXT NOT NULL,
    source TEXT NOT NULL,
    pkey TEXT NOT NULL,                  -- the source's key (a file's content identity)
    data TEXT NOT NULL,                  -- the source's position, JSON
    PRIMARY KEY (node_id, source, pkey)
);
INSERT OR IGNORE INTO authstat_positions (node_id, source, pkey, data)
    SELECT node_id, source,
           'file:' || fingerprint || ':' || fingerprint_len || ':' || device || ':' || inode,
           json_object('offset', file_offset, 'fp', fingerprint, 'len', fingerprint_len, 'path', path)
    FROM authstat_checkpoints;
CREATE TABLE IF NOT EXISTS authstat_claims (
    ckey TEXT NOT NULL PRIMARY KEY,      -- e.g. file:<fingerprint>:<bytes fingerprinted>
    node_id TEXT NOT NULL,
    source TEXT NOT NULL,
    epoch INTEGER NOT NULL               -- the owner's epoch when it claimed or confirmed it
);
INSERT OR IGNORE INTO authstat_claims (ckey, node_id, source, epoch)
    SELECT 'file:' || fingerprint || ':' || fingerprint_len, node_id, source, 0
    FROM authstat_checkpoints;
DROP TABLE IF EXISTS authstat_checkpoints;
