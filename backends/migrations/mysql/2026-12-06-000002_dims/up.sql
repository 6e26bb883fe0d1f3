-- Statistics per client and per realm (docs/storage.md, "Clients and realms"): per node, month
-- and dimension (`c:<client id>`, `r:<realm>`; `c`, `r`: the rest beyond the cap) the users
-- (an HLL of 2,048 registers) and the counters; and their union over nodes in the roll-up.
-- `dim` is bytes here (its UTF-8): as utf8mb4 text, a key of it with the counters' key parts
-- would pass InnoDB's 3,072-byte limit.
CREATE TABLE IF NOT EXISTS authstat_dim_hll (
    node_id VARCHAR(128) NOT NULL,
    month INTEGER NOT NULL,
    dim VARBINARY(270) NOT NULL,
    hll LONGBLOB NOT NULL,
    PRIMARY KEY (node_id, month, dim)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS authstat_dim_counters (
    node_id VARCHAR(128) NOT NULL,
    month INTEGER NOT NULL,
    dim VARBINARY(270) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    k1 VARCHAR(255) NOT NULL,
    k2 VARCHAR(255) NOT NULL,
    value BIGINT NOT NULL,
    PRIMARY KEY (node_id, month, dim, kind, k1, k2)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE TABLE IF NOT EXISTS authstat_rollup_dims (
    month INTEGER NOT NULL,
    dim VARBINARY(270) NOT NULL,
    hll LONGBLOB NOT NULL,
    counters MEDIUMTEXT NOT NULL,         -- [[kind, k1, k2, value], …] (JSON)
    PRIMARY KEY (month, dim)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
