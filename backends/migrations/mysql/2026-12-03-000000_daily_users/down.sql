DROP TABLE IF EXISTS authstat_daily_users;
