ALTER TABLE authstat_rollup DROP COLUMN clients_hll;
ALTER TABLE authstat_hll DROP COLUMN clients;
