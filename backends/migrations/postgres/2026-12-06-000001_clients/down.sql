ALTER TABLE authstat_rollup DROP COLUMN IF EXISTS clients_hll;
ALTER TABLE authstat_hll DROP COLUMN IF EXISTS clients;
