DROP TABLE IF EXISTS authstat_meta;
ALTER TABLE authstat_nodes DROP COLUMN rollup_seq;
DROP TABLE IF EXISTS authstat_rollup_counters;
DROP TABLE IF EXISTS authstat_rollup;
