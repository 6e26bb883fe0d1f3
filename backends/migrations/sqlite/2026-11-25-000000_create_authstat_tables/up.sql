-- authstat schema, SQLite. Every agent (node) writes only its own rows.
CREATE TABLE IF NOT EXISTS authstat_nodes (
    node_id TEXT NOT NULL PRIMARY KEY,
    seq INTEGER NOT NULL,                -- last applied flush sequence number
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS authstat_hll (
    node_id TEXT NOT NULL,
    month INTEGER NOT NULL,              -- yyyyMM
    hll BLOB NOT NULL,                   -- java-hll / postgresql-hll storage spec v1
    PRIMARY KEY (node_id, month)
);
CREATE INDEX IF NOT EXISTS authstat_hll_month ON authstat_hll (month);
CREATE TABLE IF NOT EXISTS authstat_counters (
    node_id TEXT NOT NULL,
    month INTEGER NOT NULL,
    kind TEXT NOT NULL,                  -- token | audit | authn
    k1 TEXT NOT NULL,
    k2 TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (node_id, month, kind, k1, k2)
);
CREATE INDEX IF NOT EXISTS authstat_counters_month ON authstat_counters (month);
CREATE TABLE IF NOT EXISTS authstat_checkpoints (
    node_id TEXT NOT NULL,
    source TEXT NOT NULL,
    device INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    fingerprint INTEGER NOT NULL,
    fingerprint_len INTEGER NOT NULL,
    file_offset INTEGER NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (node_id, source, device, inode, fingerprint)
);
