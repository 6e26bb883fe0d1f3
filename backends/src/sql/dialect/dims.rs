//! The statements of clients and realms (`super::super::dims`). Reads of node rows answer
//! [`DimRow`](super::super::conn::DimRow)s: an HLL row (`kind` `#hll`, the bytes in `hll`) or a
//! counter row; reads of the roll-up [`RollupDimRow`](super::super::conn::RollupDimRow)s, one
//! per month and dimension with its counters inline (JSON), so that a read of 1,000 clients ×
//! 12 months is 12,000 rows.

use super::Dialect;

/// The node tables and their roll-up twins.
const NODE_HLL: &str = "authstat_dim_hll";
const NODE_COUNTERS: &str = "authstat_dim_counters";
const ROLLUP: &str = "authstat_rollup_dims";

impl Dialect {
    /// The dimension as text (MySQL stores its bytes).
    fn dim_text(self) -> &'static str {
        match self {
            Dialect::Mysql => "CAST(dim AS CHAR CHARACTER SET utf8mb4)",
            Dialect::Sqlite | Dialect::Postgres => "dim",
        }
    }

    fn zero_and_sum(self) -> (&'static str, &'static str) {
        match self {
            Dialect::Sqlite => ("0", "SUM(value)"),
            Dialect::Postgres => ("CAST(0 AS BIGINT)", "CAST(SUM(value) AS BIGINT)"),
            Dialect::Mysql => ("CAST(0 AS SIGNED)", "CAST(SUM(value) AS SIGNED)"),
        }
    }

    /// HLL rows of `table` matching `filter`.
    fn dim_hll_rows(self, table: &str, filter: &str) -> String {
        format!(
            "SELECT month, {} AS dim, '#hll' AS kind, '' AS k1, '' AS k2, {} AS value, hll \
             FROM {table} WHERE {filter}",
            self.dim_text(),
            self.zero_and_sum().0
        )
    }

    /// Counter rows of `table` matching `filter`.
    fn dim_counter_rows(self, table: &str, filter: &str) -> String {
        format!(
            "SELECT month, {} AS dim, kind, k1, k2, value, {} AS hll FROM {table} WHERE {filter}",
            self.dim_text(),
            self.null_blob()
        )
    }

    /// One month's HLL rows of `dims` dimensions of a node. Binds: node_id, month, the
    /// dimensions.
    pub(crate) fn dim_hlls(self, dims: usize) -> String {
        let filter = format!(
            "node_id = {} AND month = {} AND dim IN ({})",
            self.param(1),
            self.param(2),
            self.list(3, dims)
        );
        self.dim_hll_rows(NODE_HLL, &filter)
    }

    /// Rows of the roll-up matching `filter`.
    fn rollup_rows(self, filter: &str) -> String {
        format!(
            "SELECT month, {} AS dim, hll, counters FROM {ROLLUP} WHERE {filter}",
            self.dim_text()
        )
    }

    /// One month's roll-up rows of `dims` dimensions. Binds: month, the dimensions.
    pub(crate) fn rollup_dims_of(self, dims: usize) -> String {
        self.rollup_rows(&format!(
            "month = {} AND dim IN ({})",
            self.param(1),
            self.list(2, dims)
        ))
    }

    /// Replaces a node's HLL rows. Binds per row: node_id, month, dim, hll.
    pub(crate) fn upsert_dim_hlls(self, rows: usize) -> String {
        let key = "node_id, month, dim";
        let head = format!(
            "INSERT INTO {NODE_HLL} ({key}, hll) VALUES {}",
            self.value_rows(1, rows, 4)
        );
        match self {
            Dialect::Sqlite | Dialect::Postgres => {
                format!("{head} ON CONFLICT ({key}) DO UPDATE SET hll = excluded.hll")
            }
            Dialect::Mysql => format!("{head} ON DUPLICATE KEY UPDATE hll = VALUES(hll)"),
        }
    }

    /// Replaces roll-up rows. Binds per row: month, dim, hll, counters.
    pub(crate) fn upsert_rollup_dims(self, rows: usize) -> String {
        let head = format!(
            "INSERT INTO {ROLLUP} (month, dim, hll, counters) VALUES {}",
            self.value_rows(1, rows, 4)
        );
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT (month, dim) DO UPDATE SET hll = excluded.hll, \
                 counters = excluded.counters"
            ),
            Dialect::Mysql => format!(
                "{head} ON DUPLICATE KEY UPDATE hll = VALUES(hll), counters = VALUES(counters)"
            ),
        }
    }

    /// Adds a node's counter deltas. Binds per row: node_id, month, dim, kind, k1, k2, value.
    pub(crate) fn upsert_dim_counters(self, rows: usize) -> String {
        let key = "node_id, month, dim, kind, k1, k2";
        let head = format!(
            "INSERT INTO {NODE_COUNTERS} ({key}, value) VALUES {}",
            self.value_rows(1, rows, 7)
        );
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} ON CONFLICT ({key}) DO UPDATE SET value = {NODE_COUNTERS}.value + excluded.value"
            ),
            Dialect::Mysql => {
                format!("{head} ON DUPLICATE KEY UPDATE value = value + VALUES(value)")
            }
        }
    }

    /// One node's HLL and counter rows of `months` months. Binds: the node and the months,
    /// twice.
    pub(crate) fn node_dims_of(self, months: usize) -> String {
        let filter = |first: usize| {
            format!(
                "node_id = {} AND month IN ({})",
                self.param(first),
                self.list(first + 1, months)
            )
        };
        format!(
            "{} UNION ALL {}",
            self.dim_hll_rows(NODE_HLL, &filter(1)),
            self.dim_counter_rows(NODE_COUNTERS, &filter(months + 2))
        )
    }

    /// Every HLL row of `nodes` nodes. Binds: the nodes.
    pub(crate) fn node_dim_hlls(self, nodes: usize) -> String {
        self.dim_hll_rows(NODE_HLL, &format!("node_id IN ({})", self.list(1, nodes)))
    }

    /// The roll-up's rows of `months` months, of the dimensions whose text starts with `prefix`
    /// (a kind's letter). Binds: the months.
    pub(crate) fn read_rollup_dims(self, months: usize, prefix: char) -> String {
        debug_assert!(prefix.is_ascii_lowercase());
        self.rollup_rows(&format!(
            "month IN ({}) AND dim LIKE '{prefix}%'",
            self.list(1, months)
        ))
    }

    /// Every node's HLL rows, and the counters summed over nodes (to build the roll-up anew).
    pub(crate) fn all_dim_rows(self) -> String {
        let sum = self.zero_and_sum().1;
        format!(
            "{} UNION ALL SELECT month, {} AS dim, kind, k1, k2, {sum} AS value, {} AS hll \
             FROM {NODE_COUNTERS} GROUP BY month, dim, kind, k1, k2",
            self.dim_hll_rows(NODE_HLL, "1 = 1"),
            self.dim_text(),
            self.null_blob()
        )
    }

    /// Adds `nodes` nodes' counters to the folded node's. Binds: folded node id, the nodes.
    pub(crate) fn fold_dim_counters(self, nodes: usize) -> String {
        let sum = self.zero_and_sum().1;
        let folded = match self {
            Dialect::Postgres => "CAST($1 AS VARCHAR(128))",
            Dialect::Sqlite | Dialect::Mysql => "?",
        };
        let select = format!(
            "SELECT {folded} AS node_id, month, dim, kind, k1, k2, {sum} AS total \
             FROM {NODE_COUNTERS} WHERE node_id IN ({}) GROUP BY month, dim, kind, k1, k2",
            self.list(2, nodes)
        );
        let head =
            format!("INSERT INTO {NODE_COUNTERS} (node_id, month, dim, kind, k1, k2, value)");
        match self {
            Dialect::Sqlite | Dialect::Postgres => format!(
                "{head} {select} ON CONFLICT (node_id, month, dim, kind, k1, k2) \
                 DO UPDATE SET value = {NODE_COUNTERS}.value + excluded.value"
            ),
            Dialect::Mysql => format!(
                "{head} SELECT * FROM ({select}) AS folded \
                 ON DUPLICATE KEY UPDATE value = {NODE_COUNTERS}.value + VALUES(value)"
            ),
        }
    }

    /// Deletes the days' rows of the months before one (node rows and roll-up). Binds: the
    /// month.
    pub(crate) fn drop_days_before(self) -> [String; 3] {
        [NODE_HLL, NODE_COUNTERS, ROLLUP].map(|table| {
            format!(
                "DELETE FROM {table} WHERE month < {} AND (dim LIKE 'd%' OR dim LIKE 'e%')",
                self.param(1)
            )
        })
    }

    /// Empties the roll-up of clients and realms (before it is built anew).
    pub(crate) fn clear_rollup_dims(self) -> String {
        format!("DELETE FROM {ROLLUP}")
    }
}

/// The node tables of clients and realms (a fold deletes a node's rows of both).
pub(crate) const NODE_DIM_TABLES: [&str; 2] = [NODE_HLL, NODE_COUNTERS];
