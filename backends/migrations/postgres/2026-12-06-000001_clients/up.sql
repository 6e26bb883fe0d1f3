-- Monthly active clients: each node's HLL of the clients named by its successful
-- authorizations and token requests, and their union in the roll-up. NULL: none recorded (rows
-- stored before clients were counted, foreign snapshots).
ALTER TABLE authstat_hll ADD COLUMN IF NOT EXISTS clients BYTEA;
ALTER TABLE authstat_hll ALTER COLUMN clients SET STORAGE EXTERNAL;
ALTER TABLE authstat_rollup ADD COLUMN IF NOT EXISTS clients_hll BYTEA;
