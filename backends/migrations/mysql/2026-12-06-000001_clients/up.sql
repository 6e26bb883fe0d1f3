-- Monthly active clients: each node's HLL of the clients named by its successful
-- authorizations and token requests, and their union in the roll-up. NULL: none recorded (rows
-- stored before clients were counted, foreign snapshots).
ALTER TABLE authstat_hll ADD COLUMN clients LONGBLOB;
ALTER TABLE authstat_rollup ADD COLUMN clients_hll LONGBLOB;
