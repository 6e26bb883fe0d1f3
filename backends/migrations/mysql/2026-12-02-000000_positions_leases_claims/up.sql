-- Opaque source positions (replacing file checkpoints, which are carried over), node leases
-- (one agent per node id) and cluster-wide claims (a file counted by one node only).
ALTER TABLE authstat_nodes
    ADD COLUMN epoch BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN holder TEXT NULL,
    ADD COLUMN lease_until_ms BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN released INT NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS authstat_positions (
    node_id VARCHAR(128) NOT NULL,
    source VARCHAR(255) NOT NULL,
    pkey VARCHAR(255) NOT NULL,
    data LONGTEXT NOT NULL,
    PRIMARY KEY (node_id, source, pkey)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT IGNORE INTO authstat_positions (node_id, source, pkey, data)
    SELECT node_id, source,
           CONCAT('file:', fingerprint, ':', fingerprint_len, ':', device, ':', inode),
           JSON_OBJECT('offset', file_offset, 'fp', fingerprint, 'len', fingerprint_len, 'path', path)
    FROM authstat_checkpoints;
CREATE TABLE IF NOT EXISTS authstat_claims (
    ckey VARCHAR(255) NOT NULL PRIMARY KEY,
    node_id VARCHAR(128) NOT NULL,
    source VARCHAR(255) NOT NULL,
    epoch BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT IGNORE INTO authstat_claims (ckey, node_id, source, epoch)
    SELECT CONCAT('file:', fingerprint, ':', fingerprint_len), node_id, source, 0
    FROM authstat_checkpoints;
DROP TABLE IF EXISTS authstat_checkpoints;
