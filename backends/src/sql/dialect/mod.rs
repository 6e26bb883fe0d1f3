//! The SQL text of every statement, per dialect. Plain string building, no diesel types, so the
//! three dialects sit side by side and every difference between them is visible here.

mod dims;
mod rollup;

pub(crate) use dims::NODE_DIM_TABLES;

/// The SQL dialects authstat speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
    Mysql,
}

/// Columns of the tables (used to build multi-row statements).
const HLL_COLUMNS: usize = 4;
const COUNTER_COLUMNS: usize = 6;
const POSITION_COLUMNS: usize = 4;

impl Dialect {
    /// The backend kind as in the configuration.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        }
    }

    /// Bind parameter number `n` (1-based).
    pub(crate) fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::Sqlite | Dialect::Mysql => "?".to_owned(),
        }
    }

    /// `(…), (…)` for `rows` rows of `columns` parameters, numbering from `first`.
    fn value_rows(self, first: usize, rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|r| {
                let params: Vec<String> = (0..columns)
                    .map(|c| self.param(first + r * columns + c))
                    .collect();
                format!("({})", params.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(crate) fn list(self, first: usize, count: usize) -> String {
        (0..count)
            .map(|i| self.param(first + i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Creates the node's row if absent. Binds: node_id, updated_at_ms.
    pub(crate) fn ensure_node(self) -> String {
        let values = match self {
            Dialect::Postgres => "($1, 0, $2)",
            Dialect::Sqlite | Dialect::Mysql => "(?, 0, ?)",
        };
        match self {
            Dialect::Sqlite => format!(
                "INSERT OR IGNORE INTO authstat_nodes (node_id, seq, updated_at_ms) VALUES {values}"
            ),
            Dialect::Postgres => format!(
                "INSERT INTO authstat_nodes (node_id, seq, updated_at_ms) VALUES {values} \
                 ON CONFLICT (node_id) DO NOTHING"
            ),
            Dialect::Mysql => format!(
                "INSERT IGNORE INTO authstat_nodes (node_id, seq, updated_at_ms) VALUES {values}"
            ),
        }
    }

    /// The node's row, locking it for the transaction. Binds: node_id.
    pub(crate) fn lock_node(self) -> String {
        let lock = match self {
            // SQLite: the IMMEDIATE transaction already holds the database's write lock.
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE",
        };
        format!(
            "SELECT seq, epoch, holder, lease_until_ms, released FROM authstat_nodes \
             WHERE node_id = {}{lock}",
            self.param(1)
        )
    }

    /// The node's row. Binds: node_id.
    pub(crate) fn node_row(self) -> String {
        format!(
            "SELECT seq, epoch, holder, lease_until_ms, released FROM authstat_nodes \
             WHERE node_id = {}",
            self.param(1)
        )
    }

    /// Binds: seq, updated_at_ms, lease_until_ms, node_id.
    pub(crate) fn update_node(self) -> String {
        // `rollup_seq` first: MySQL assigns left to right, so `seq` is still the old one there.
        format!(
            "UPDATE authstat_nodes SET rollup_seq = rollup_seq + ({} - seq), seq = {}, \
             updated_at_ms = {}, lease_until_ms = {} WHERE node_id = {}",
            self.param(1),
            self.param(2),
            self.param(3),
            self.param(4),
            self.param(5)
        )
    }

    /// Every node's row.
    pub(crate) fn list_nodes(self) -> &'static str {
        "SELECT node_id, updated_at_ms, seq, epoch, holder, lease_until_ms, released \
         FROM authstat_nodes ORDER BY node_id"
    }

    /// A number that changes with every applied flush of any node.
    pub(crate) fn data_version(self) -> String {
        let sum = match self {
            Dialect::Sqlite => "COALESCE(SUM(seq), 0)",
            Dialect::Postgres => "CAST(COALESCE(SUM(seq), 0) AS BIGINT)",
            Dialect::Mysql => "CAST(COALESCE(SUM(seq), 0) AS SIGNED)",
        };
        format!("SELECT {sum} AS seq FROM authstat_nodes")
    }

    /// Replaces HLLs. Binds per row: node_id, month, hll.
    pub(crate) fn upsert_hlls(self, rows: usize) -> String {
        let values = self.value_rows(1, rows, HLL_COLUMNS);
        let head =
            format!("INSERT INTO authstat_hll (node_id, month, hll, clients) VALUES {values}");
        // A flush without clients keeps the stored ones.
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT (node_id, month) DO UPDATE SET hll = excluded.hll, \
                 clients = COALESCE(excluded.clients, authstat_hll.clients)"
            ),
            Dialect::Mysql => format!(
                "{head} ON DUPLICATE KEY UPDATE hll = VALUES(hll), \
                 clients = COALESCE(VALUES(clients), clients)"
            ),
        }
    }

    /// Adds counter deltas. Binds per row: node_id, month, kind, k1, k2, value.
    pub(crate) fn upsert_counters(self, rows: usize) -> String {
        let values = self.value_rows(1, rows, COUNTER_COLUMNS);
        let head = format!(
            "INSERT INTO authstat_counters (node_id, month, kind, k1, k2, value) VALUES {values}"
        );
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT (node_id, month, kind, k1, k2) \
                 DO UPDATE SET value = authstat_counters.value + excluded.value"
            ),
            Dialect::Mysql => {
                format!("{head} ON DUPLICATE KEY UPDATE value = value + VALUES(value)")
            }
        }
    }

    /// Binds: node_id.
    pub(crate) fn delete_positions(self) -> String {
        format!(
            "DELETE FROM authstat_positions WHERE node_id = {}",
            self.param(1)
        )
    }

    /// Binds per row: node_id, source, pkey, data.
    pub(crate) fn insert_positions(self, rows: usize) -> String {
        format!(
            "INSERT INTO authstat_positions (node_id, source, pkey, data) VALUES {}",
            self.value_rows(1, rows, POSITION_COLUMNS)
        )
    }

    /// HLL rows (kind `#hll`, k1 = node) and per-month counter sums of `months` months, in one
    /// statement. Binds: the months, twice.
    pub(crate) fn read_months(self, months: usize) -> String {
        let first = self.list(1, months);
        let second = self.list(months + 1, months);
        let (zero, sum, null_blob) = match self {
            Dialect::Sqlite => ("0", "SUM(value)", "NULL"),
            Dialect::Postgres => (
                "CAST(0 AS BIGINT)",
                "CAST(SUM(value) AS BIGINT)",
                "CAST(NULL AS BYTEA)",
            ),
            Dialect::Mysql => (
                "CAST(0 AS SIGNED)",
                "CAST(SUM(value) AS SIGNED)",
                "CAST(NULL AS BINARY)",
            ),
        };
        format!(
            "SELECT month, '#hll' AS kind, node_id AS k1, '' AS k2, {zero} AS value, hll, \
             clients FROM authstat_hll WHERE month IN ({first}) \
             UNION ALL \
             SELECT month, kind, k1, k2, {sum} AS value, {null_blob} AS hll, \
             {null_blob} AS clients \
             FROM authstat_counters WHERE month IN ({second}) GROUP BY month, kind, k1, k2"
        )
    }

    /// The HLL rows of `nodes` nodes, in the read path's row shape. Binds: the node ids.
    pub(crate) fn hlls_of(self, nodes: usize) -> String {
        format!(
            "SELECT month, '#hll' AS kind, node_id AS k1, '' AS k2, {} AS value, hll, \
             clients FROM authstat_hll WHERE node_id IN ({})",
            match self {
                Dialect::Sqlite => "0",
                Dialect::Postgres => "CAST(0 AS BIGINT)",
                Dialect::Mysql => "CAST(0 AS SIGNED)",
            },
            self.list(1, nodes)
        )
    }

    /// One node's counter rows. Binds: node_id.
    pub(crate) fn node_counters(self) -> String {
        format!(
            "SELECT month, kind, k1, k2, value, {b} AS hll, {b} AS clients FROM authstat_counters \
             WHERE node_id = {}",
            self.param(1),
            b = self.null_blob(),
        )
    }

    /// One node's positions. Binds: node_id.
    pub(crate) fn node_positions(self) -> String {
        format!(
            "SELECT source, pkey, data FROM authstat_positions WHERE node_id = {} \
             ORDER BY source, pkey",
            self.param(1)
        )
    }

    /// At most `limit` nodes to fold: silent (last flush before a time), lease not live,
    /// holding monthly rows; never a reserved node (the folded node itself, foreign nodes' snapshots). Locks their rows for the
    /// transaction. Binds: folded node id, silent_before_ms, now_ms.
    pub(crate) fn silent_nodes(self, limit: usize) -> String {
        let lock = match self {
            Dialect::Sqlite => "",
            Dialect::Postgres | Dialect::Mysql => " FOR UPDATE",
        };
        format!(
            "SELECT node_id FROM authstat_nodes n WHERE node_id <> {} \
             AND node_id NOT LIKE 'authstat:%' AND updated_at_ms < {} \
             AND (released <> 0 OR holder IS NULL OR lease_until_ms <= {}) \
             AND (EXISTS (SELECT 1 FROM authstat_hll h WHERE h.node_id = n.node_id) \
                  OR EXISTS (SELECT 1 FROM authstat_counters c WHERE c.node_id = n.node_id)) \
             ORDER BY node_id LIMIT {limit}{lock}",
            self.param(1),
            self.param(2),
            self.param(3)
        )
    }

    /// Adds the counters of `nodes` nodes to the folded node's. Binds: folded node id, then
    /// the node ids.
    pub(crate) fn fold_counters(self, nodes: usize) -> String {
        let ids = self.list(2, nodes);
        let sum = match self {
            Dialect::Sqlite => "SUM(value)",
            Dialect::Postgres => "CAST(SUM(value) AS BIGINT)",
            Dialect::Mysql => "CAST(SUM(value) AS SIGNED)",
        };
        let folded = match self {
            Dialect::Postgres => "CAST($1 AS VARCHAR(128))".to_owned(),
            Dialect::Sqlite | Dialect::Mysql => "?".to_owned(),
        };
        // MySQL: the sums come through a derived table, so that the update clause can name the
        // inserted value without the GROUP BY's restrictions.
        let select = format!(
            "SELECT {folded} AS node_id, month, kind, k1, k2, {sum} AS total \
             FROM authstat_counters WHERE node_id IN ({ids}) GROUP BY month, kind, k1, k2"
        );
        let head = "INSERT INTO authstat_counters (node_id, month, kind, k1, k2, value)";
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} {select} ON CONFLICT (node_id, month, kind, k1, k2) \
                 DO UPDATE SET value = authstat_counters.value + excluded.value"
            ),
            Dialect::Mysql => format!(
                "{head} SELECT * FROM ({select}) AS folded \
                 ON DUPLICATE KEY UPDATE value = authstat_counters.value + VALUES(value)"
            ),
        }
    }

    /// Deletes the rows of `nodes` nodes from `table`. Binds: the node ids.
    pub(crate) fn delete_rows_of(self, table: &str, nodes: usize) -> String {
        format!(
            "DELETE FROM {table} WHERE node_id IN ({})",
            self.list(1, nodes)
        )
    }

    /// Records a foreign node's snapshot: its version (in `epoch`), a new `seq` (the data
    /// version changes). Binds: updated_at_ms, version, node_id.
    pub(crate) fn record_snapshot(self) -> String {
        format!(
            "UPDATE authstat_nodes SET rollup_seq = rollup_seq + 1, seq = seq + 1, \
             updated_at_ms = {}, epoch = {} WHERE node_id = {}",
            self.param(1),
            self.param(2),
            self.param(3)
        )
    }

    /// Deletes one node's rows of `months` months from `table`. Binds: node_id, the months.
    pub(crate) fn delete_months_of(self, table: &str, months: usize) -> String {
        format!(
            "DELETE FROM {table} WHERE node_id = {} AND month IN ({})",
            self.param(1),
            self.list(2, months)
        )
    }

    pub(crate) fn null_blob(self) -> &'static str {
        match self {
            Dialect::Sqlite => "NULL",
            Dialect::Postgres => "CAST(NULL AS BYTEA)",
            Dialect::Mysql => "CAST(NULL AS BINARY)",
        }
    }

    /// Records a day's month-to-date users, keeping the largest. Binds: month, day, users.
    pub(crate) fn record_daily_users(self) -> String {
        let head = format!(
            "INSERT INTO authstat_daily_users (month, day, users) VALUES ({}, {}, {})",
            self.param(1),
            self.param(2),
            self.param(3)
        );
        match self {
            Dialect::Sqlite => format!(
                "{head} ON CONFLICT (month, day) \
                 DO UPDATE SET users = MAX(authstat_daily_users.users, excluded.users)"
            ),
            Dialect::Postgres => format!(
                "{head} ON CONFLICT (month, day) \
                 DO UPDATE SET users = GREATEST(authstat_daily_users.users, excluded.users)"
            ),
            Dialect::Mysql => {
                format!("{head} ON DUPLICATE KEY UPDATE users = GREATEST(users, VALUES(users))")
            }
        }
    }

    /// A month's daily figures. Binds: month.
    pub(crate) fn daily_users(self) -> String {
        let users = match self {
            Dialect::Sqlite => "users",
            Dialect::Postgres => "CAST(users AS BIGINT)",
            Dialect::Mysql => "CAST(users AS SIGNED)",
        };
        format!(
            "SELECT day, {users} AS users FROM authstat_daily_users WHERE month = {}",
            self.param(1)
        )
    }

    /// Marks a fold on the folded node's row (the data version changes). Binds:
    /// updated_at_ms, node_id.
    pub(crate) fn bump_node(self) -> String {
        format!(
            "UPDATE authstat_nodes SET rollup_seq = rollup_seq + 1, seq = seq + 1, \
             updated_at_ms = {} WHERE node_id = {}",
            self.param(1),
            self.param(2)
        )
    }

    /// Rows per multi-row statement: stays far below every driver's bind-parameter limit.
    pub(crate) const ROWS_PER_STATEMENT: usize = 500;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_per_dialect() {
        assert_eq!(
            Dialect::Postgres.upsert_hlls(2),
            "INSERT INTO authstat_hll (node_id, month, hll, clients) \
             VALUES ($1, $2, $3, $4), ($5, $6, $7, $8) \
             ON CONFLICT (node_id, month) DO UPDATE SET hll = excluded.hll, \
             clients = COALESCE(excluded.clients, authstat_hll.clients)"
        );
        assert_eq!(
            Dialect::Mysql.upsert_hlls(1),
            "INSERT INTO authstat_hll (node_id, month, hll, clients) VALUES (?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE hll = VALUES(hll), \
             clients = COALESCE(VALUES(clients), clients)"
        );
        assert_eq!(
            Dialect::Sqlite.ensure_node(),
            "INSERT OR IGNORE INTO authstat_nodes (node_id, seq, updated_at_ms) VALUES (?, 0, ?)"
        );
        assert!(
            Dialect::Postgres
                .ensure_node()
                .contains("VALUES ($1, 0, $2)")
        );
        assert!(Dialect::Postgres.read_months(2).contains("IN ($1, $2)"));
        assert!(Dialect::Postgres.read_months(2).contains("IN ($3, $4)"));
    }
}
