DROP TABLE IF EXISTS authstat_claims;
DROP TABLE IF EXISTS authstat_positions;
