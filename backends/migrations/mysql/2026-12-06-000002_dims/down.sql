DROP TABLE authstat_rollup_dims;
DROP TABLE authstat_dim_counters;
DROP TABLE authstat_dim_hll;
