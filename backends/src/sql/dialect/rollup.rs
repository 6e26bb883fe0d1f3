//! The roll-up's statements (`super::super::rollup`).

use super::Dialect;

impl Dialect {
    /// The roll-up's gate, held shared by every write (`exclusive`: by a rebuild) until the
    /// transaction ends. SQLite: the database's write lock already serialises them.
    pub(crate) fn rollup_gate(self, exclusive: bool) -> String {
        let lock = match (self, exclusive) {
            (Dialect::Sqlite, _) => "",
            (_, true) => " FOR UPDATE",
            (Dialect::Postgres, false) => " FOR SHARE",
            (Dialect::Mysql, false) => " LOCK IN SHARE MODE",
        };
        format!("SELECT value AS seq FROM authstat_meta WHERE mkey = 'rollup_gate'{lock}")
    }

    /// A month of the roll-up, locked for the transaction. Binds: month.
    pub(crate) fn lock_rollup(self) -> String {
        let lock = match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE",
        };
        format!(
            "SELECT month, hll, foreign_hll, clients_hll, mixed, version FROM authstat_rollup \
             WHERE month = {}{lock}",
            self.param(1)
        )
    }

    /// `months` months of the roll-up without their foreign users, locked for the transaction
    /// in month order (a flush's). Binds: the months.
    pub(crate) fn lock_rollups(self, months: usize) -> String {
        let lock = match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE",
        };
        format!(
            "SELECT month, hll, {} AS foreign_hll, clients_hll, mixed, version \
             FROM authstat_rollup WHERE month IN ({}) ORDER BY month{lock}",
            self.null_blob(),
            self.list(1, months)
        )
    }

    /// Creates the roll-up rows of `months` months that do not exist yet (empty), so that a
    /// lock can hold them: two flushes of a new month take turns instead of both writing a row
    /// (the second would replace the first one's users). Binds: the months.
    pub(crate) fn ensure_rollups(self, months: usize) -> String {
        let values = (1..=months)
            .map(|i| format!("({})", self.param(i)))
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            Dialect::Sqlite => {
                format!("INSERT OR IGNORE INTO authstat_rollup (month) VALUES {values}")
            }
            Dialect::Postgres => {
                format!(
                    "INSERT INTO authstat_rollup (month) VALUES {values} ON CONFLICT DO NOTHING"
                )
            }
            Dialect::Mysql => format!("INSERT IGNORE INTO authstat_rollup (month) VALUES {values}"),
        }
    }

    /// Writes `rows` months' users and clients of the roll-up (their foreign users stay),
    /// bumping their versions. Binds per row: month, hll, clients_hll, mixed.
    pub(crate) fn upsert_rollup_users(self, rows: usize) -> String {
        let head = format!(
            "INSERT INTO authstat_rollup (month, hll, clients_hll, mixed, version) VALUES {}",
            (0..rows)
                .map(|r| format!(
                    "({}, {}, {}, {}, 1)",
                    self.param(4 * r + 1),
                    self.param(4 * r + 2),
                    self.param(4 * r + 3),
                    self.param(4 * r + 4)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT (month) DO UPDATE SET hll = excluded.hll, \
                 clients_hll = excluded.clients_hll, mixed = excluded.mixed, \
                 version = authstat_rollup.version + 1"
            ),
            Dialect::Mysql => format!(
                "{head} ON DUPLICATE KEY UPDATE hll = VALUES(hll), \
                 clients_hll = VALUES(clients_hll), mixed = VALUES(mixed), version = version + 1"
            ),
        }
    }

    /// Bumps the versions of `months` months of the roll-up (their users did not change).
    /// Binds: the months.
    pub(crate) fn bump_rollups(self, months: usize) -> String {
        format!(
            "UPDATE authstat_rollup SET version = version + 1 WHERE month IN ({})",
            self.list(1, months)
        )
    }

    /// Writes a month of the roll-up, bumping its version. Binds: month, hll, foreign_hll,
    /// mixed.
    pub(crate) fn upsert_rollup(self) -> String {
        let head = format!(
            "INSERT INTO authstat_rollup (month, hll, foreign_hll, mixed, version) \
             VALUES ({}, {}, {}, {}, 1)",
            self.param(1),
            self.param(2),
            self.param(3),
            self.param(4)
        );
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT (month) DO UPDATE SET hll = excluded.hll, \
                 foreign_hll = excluded.foreign_hll, mixed = excluded.mixed, \
                 version = authstat_rollup.version + 1"
            ),
            Dialect::Mysql => format!(
                "{head} ON DUPLICATE KEY UPDATE hll = VALUES(hll), \
                 foreign_hll = VALUES(foreign_hll), mixed = VALUES(mixed), version = version + 1"
            ),
        }
    }

    /// Inserts a rebuilt month of the roll-up. Binds: month, hll, foreign_hll, clients_hll,
    /// mixed, version.
    pub(crate) fn insert_rollup(self) -> String {
        format!(
            "INSERT INTO authstat_rollup (month, hll, foreign_hll, clients_hll, mixed, version) \
             VALUES {}",
            self.value_rows(1, 1, 6)
        )
    }

    /// Adds counter deltas to the roll-up. Binds per row: month, kind, k1, k2, value.
    pub(crate) fn upsert_rollup_counters(self, rows: usize) -> String {
        let values = self.value_rows(1, rows, 5);
        let head = format!(
            "INSERT INTO authstat_rollup_counters (month, kind, k1, k2, value) VALUES {values}"
        );
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT (month, kind, k1, k2) \
                 DO UPDATE SET value = authstat_rollup_counters.value + excluded.value"
            ),
            Dialect::Mysql => {
                format!("{head} ON DUPLICATE KEY UPDATE value = value + VALUES(value)")
            }
        }
    }

    /// Takes a counter away from the roll-up. Binds: value, month, kind, k1, k2.
    pub(crate) fn subtract_rollup_counter(self) -> String {
        format!(
            "UPDATE authstat_rollup_counters SET value = value - {} \
             WHERE month = {} AND kind = {} AND k1 = {} AND k2 = {}",
            self.param(1),
            self.param(2),
            self.param(3),
            self.param(4),
            self.param(5)
        )
    }

    /// Drops the roll-up's counters of `months` months that fell to 0. Binds: the months.
    pub(crate) fn drop_zero_rollup_counters(self, months: usize) -> String {
        format!(
            "DELETE FROM authstat_rollup_counters WHERE value <= 0 AND month IN ({})",
            self.list(1, months)
        )
    }

    /// The roll-up's months among `months`. Binds: the months.
    pub(crate) fn read_rollup(self, months: usize) -> String {
        format!(
            "SELECT month, hll, foreign_hll, clients_hll, mixed, version FROM authstat_rollup \
             WHERE month IN ({})",
            self.list(1, months)
        )
    }

    /// The roll-up's counters of `months` months (as read rows). Binds: the months.
    pub(crate) fn read_rollup_counters(self, months: usize) -> String {
        format!(
            "SELECT month, kind, k1, k2, value, {b} AS hll, {b} AS clients \
             FROM authstat_rollup_counters WHERE month IN ({})",
            self.list(1, months),
            b = self.null_blob()
        )
    }

    /// Every month's version (with NULL HLLs: only the versions are read).
    pub(crate) fn rollup_versions(self) -> String {
        format!(
            "SELECT month, {b} AS hll, {b} AS foreign_hll, {b} AS clients_hll, mixed, version \
             FROM authstat_rollup",
            b = self.null_blob()
        )
    }

    /// How many nodes have writes the roll-up does not hold.
    pub(crate) fn rollup_behind(self) -> String {
        let count = match self {
            Dialect::Sqlite => "COUNT(*)",
            Dialect::Postgres => "CAST(COUNT(*) AS BIGINT)",
            Dialect::Mysql => "CAST(COUNT(*) AS SIGNED)",
        };
        format!("SELECT {count} AS seq FROM authstat_nodes WHERE rollup_seq <> seq")
    }

    /// Every node's rows of every month, counters summed over nodes (a rebuild of the roll-up).
    pub(crate) fn all_rows(self) -> String {
        let (zero, sum) = match self {
            Dialect::Sqlite => ("0", "SUM(value)"),
            Dialect::Postgres => ("CAST(0 AS BIGINT)", "CAST(SUM(value) AS BIGINT)"),
            Dialect::Mysql => ("CAST(0 AS SIGNED)", "CAST(SUM(value) AS SIGNED)"),
        };
        format!(
            "SELECT month, '#hll' AS kind, node_id AS k1, '' AS k2, {zero} AS value, hll, \
             clients FROM authstat_hll \
             UNION ALL \
             SELECT month, kind, k1, k2, {sum} AS value, {b} AS hll, {b} AS clients \
             FROM authstat_counters GROUP BY month, kind, k1, k2",
            b = self.null_blob()
        )
    }

    /// The foreign nodes' HLL rows of a month (`k1`: the node). Binds: month.
    pub(crate) fn foreign_hlls(self) -> String {
        format!(
            "SELECT month, '#hll' AS kind, node_id AS k1, '' AS k2, {} AS value, hll, clients \
             FROM authstat_hll WHERE month = {} AND node_id LIKE 'authstat:%:%'",
            match self {
                Dialect::Sqlite => "0",
                Dialect::Postgres => "CAST(0 AS BIGINT)",
                Dialect::Mysql => "CAST(0 AS SIGNED)",
            },
            self.param(1)
        )
    }

    /// One node's counter rows of `months` months. Binds: node_id, the months.
    pub(crate) fn node_counters_of(self, months: usize) -> String {
        format!(
            "SELECT month, kind, k1, k2, value, {b} AS hll, {b} AS clients FROM authstat_counters \
             WHERE node_id = {} AND month IN ({})",
            self.param(1),
            self.list(2, months),
            b = self.null_blob()
        )
    }
}
