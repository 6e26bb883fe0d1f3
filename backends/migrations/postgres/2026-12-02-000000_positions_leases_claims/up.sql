-- Opaque source positions (replacing file checkpoints, which are carried over), node leases
-- (one agent per node id) and cluster-wide claims (a file counted by one node only).
ALTER TABLE authstat_nodes
    ADD COLUMN IF NOT EXISTS epoch BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS holder TEXT,
    ADD COLUMN IF NOT EXISTS lease_until_ms BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS released INTEGER NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS authstat_positions (
    node_id VARCHAR(128) NOT NULL,
    source VARCHAR(255) NOT NULL,
    pkey VARCHAR(255) NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (node_id, source, pkey)
);
INSERT INTO authstat_positions (node_id, source, pkey, data)
    SELECT node_id, source,
           'file:' || fingerprint || ':' || fingerprint_len || ':' || device || ':' || inode,
           json_build_object('offset', file_offset, 'fp', fingerprint, 'len', fingerprint_len, 'path', path)::text
    FROM authstat_checkpoints
    ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS authstat_claims (
    ckey VARCHAR(255) NOT NULL PRIMARY KEY,
    node_id VARCHAR(128) NOT NULL,
    source VARCHAR(255) NOT NULL,
    epoch BIGINT NOT NULL
);
INSERT INTO authstat_claims (ckey, node_id, source, epoch)
    SELECT 'file:' || fingerprint || ':' || fingerprint_len, MIN(node_id), MIN(source), 0
    FROM authstat_checkpoints
    GROUP BY 'file:' || fingerprint || ':' || fingerprint_len
    ON CONFLICT DO NOTHING;
DROP TABLE IF EXISTS authstat_checkpoints;
