-- The cluster roll-up (docs/storage.md, "Reads of all nodes"): per month, what a read of all
-- nodes answers, kept up to date in the transaction of every write, so that such a read costs
-- one row per month however many nodes wrote it.
CREATE TABLE IF NOT EXISTS authstat_rollup (
    month INTEGER NOT NULL PRIMARY KEY,   -- yyyyMM
    hll BYTEA,                            -- the union of authstat's own nodes' users
    foreign_hll BYTEA,                    -- the union of foreign nodes' users (kept apart)
    mixed INTEGER NOT NULL DEFAULT 0,     -- 1: HLLs of other parameters: read the node rows
    version BIGINT NOT NULL DEFAULT 0     -- bumped by every change (caches compare it)
);
ALTER TABLE authstat_rollup ALTER COLUMN hll SET STORAGE EXTERNAL;
CREATE TABLE IF NOT EXISTS authstat_rollup_counters (
    month INTEGER NOT NULL,
    kind VARCHAR(16) NOT NULL,
    k1 VARCHAR(255) NOT NULL,
    k2 VARCHAR(255) NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (month, kind, k1, k2)
);
-- The node's `seq` the roll-up holds its writes up to: a write of this version moves both
-- alike; one that differs from `seq` (a write of an agent that predates roll-ups, or rows
-- stored before this migration: -1) makes the next read build the roll-up anew from the rows.
ALTER TABLE authstat_nodes ADD COLUMN IF NOT EXISTS rollup_seq BIGINT NOT NULL DEFAULT 0;
UPDATE authstat_nodes SET rollup_seq = -1;
-- Writes hold the gate shared; a rebuild of the roll-up holds it alone.
CREATE TABLE IF NOT EXISTS authstat_meta (
    mkey VARCHAR(64) NOT NULL PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO authstat_meta (mkey, value) VALUES ('rollup_gate', 0) ON CONFLICT DO NOTHING;
