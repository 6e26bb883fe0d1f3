-- authstat schema, MySQL / MariaDB. Binary collation: grant types and actions are
-- case-sensitive keys.
CREATE TABLE IF NOT EXISTS authstat_nodes (
    node_id VARCHAR(128) NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS authstat_hll (
    node_id VARCHAR(128) NOT NULL,
    month INT NOT NULL,
    hll LONGBLOB NOT NULL,
    PRIMARY KEY (node_id, month),
    KEY authstat_hll_month (month)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS authstat_counters (
    node_id VARCHAR(128) NOT NULL,
    month INT NOT NULL,
    kind VARCHAR(16) NOT NULL,
    k1 VARCHAR(255) NOT NULL,
    k2 VARCHAR(255) NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (node_id, month, kind, k1, k2),
    KEY authstat_counters_month (month)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS authstat_checkpoints (
    node_id VARCHAR(128) NOT NULL,
    source VARCHAR(255) NOT NULL,
    device BIGINT NOT NULL,
    inode BIGINT NOT NULL,
    fingerprint BIGINT NOT NULL,
    fingerprint_len INT NOT NULL,
    file_offset BIGINT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (node_id, source, device, inode, fingerprint)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
