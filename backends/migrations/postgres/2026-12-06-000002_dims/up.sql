-- Statistics per client and per realm (docs/storage.md, "Clients and realms"): per node, month
-- and dimension (`c:<client id>`, `r:<realm>`; `c`, `r`: the rest beyond the cap) the users
-- (an HLL of 2,048 registers) and the counters; and their union over nodes in the roll-up.
CREATE TABLE IF NOT EXISTS authstat_dim_hll (
    node_id VARCHAR(128) NOT NULL,
    month INTEGER NOT NULL,
    dim VARCHAR(270) NOT NULL,
    hll BYTEA NOT NULL,
    PRIMARY KEY (node_id, month, dim)
);
CREATE TABLE IF NOT EXISTS authstat_dim_counters (
    node_id VARCHAR(128) NOT NULL,
    month INTEGER NOT NULL,
    dim VARCHAR(270) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    k1 VARCHAR(255) NOT NULL,
    k2 VARCHAR(255) NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (node_id, month, dim, kind, k1, k2)
);
CREATE TABLE IF NOT EXISTS authstat_rollup_dims (
    month INTEGER NOT NULL,
    dim VARCHAR(270) NOT NULL,
    hll BYTEA NOT NULL,
    counters TEXT NOT NULL,               -- [[kind, k1, k2, value], …] (JSON)
    PRIMARY KEY (month, dim)
);
ALTER TABLE authstat_dim_hll ALTER COLUMN hll SET STORAGE EXTERNAL;
ALTER TABLE authstat_rollup_dims ALTER COLUMN hll SET STORAGE EXTERNAL;
