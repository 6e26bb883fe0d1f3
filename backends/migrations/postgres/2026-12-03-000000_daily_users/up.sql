-- The cluster's distinct users of a month up to each day (month to date), recorded by the agents:
-- the dashboard compares this month with the same day of the month before.
CREATE TABLE IF NOT EXISTS authstat_daily_users (
    month INTEGER NOT NULL,              -- yyyyMM
    day INTEGER NOT NULL,                -- 1..31
    users BIGINT NOT NULL,               -- the largest figure recorded for the day
    PRIMARY KEY (month, day)
);
