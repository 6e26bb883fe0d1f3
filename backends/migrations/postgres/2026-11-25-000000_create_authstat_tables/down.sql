DROP TABLE IF EXISTS authstat_checkpoints;
DROP TABLE IF EXISTS authstat_counters;
DROP TABLE IF EXISTS authstat_hll;
DROP TABLE IF EXISTS authstat_nodes;
