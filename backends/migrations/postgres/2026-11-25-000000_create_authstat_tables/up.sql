-- authstat schema, PostgreSQL. Every agent (node) writes only its own rows.
-- authstat_hll.hll holds the postgresql-hll storage format: `SELECT hll_cardinality(hll::hll)`
-- works where the hll extension is installed.
CREATE TABLE IF NOT EXISTS authstat_nodes (
    node_id VARCHAR(128) NOT NULL PRIMARY KEY,
    seq BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS authstat_hll (
    node_id VARCHAR(128) NOT NULL,
    month INTEGER NOT NULL,
    hll BYTEA NOT NULL,
    PRIMARY KEY (node_id, month)
);
-- HLL bytes are high-entropy: storing them out of line without trying to compress them saves
-- the compression attempt on every write and the decompression on every read.
ALTER TABLE authstat_hll ALTER COLUMN hll SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS authstat_hll_month ON authstat_hll (month);
CREATE TABLE IF NOT EXISTS authstat_counters (
    node_id VARCHAR(128) NOT NULL,
    month INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL,
    k1 VARCHAR(255) NOT NULL,
    k2 VARCHAR(255) NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (node_id, month, kind, k1, k2)
);
CREATE INDEX IF NOT EXISTS authstat_counters_month ON authstat_counters (month);
CREATE TABLE IF NOT EXISTS authstat_checkpoints (
    node_id VARCHAR(128) NOT NULL,
    source VARCHAR(255) NOT NULL,
    device BIGINT NOT NULL,
    inode BIGINT NOT NULL,
    fingerprint BIGINT NOT NULL,
    fingerprint_len INTEGER NOT NULL,
    file_offset BIGINT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (node_id, source, device, inode, fingerprint)
);
