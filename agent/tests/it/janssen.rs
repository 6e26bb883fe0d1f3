//! `janssen_stat_entries` on a real PostgreSQL and a real MariaDB: Janssen's table made by its
//! own DDL, rows written the way Janssen writes them (Base64 java-hll of `String.hashCode`s,
//! token JSON), read through a read-only user with the GRANTs of docs/janssen.md. The agent's
//! stat API, `/metrics`, OTLP and `authstat query` show Janssen's figures merged with its own; a row
//! overwritten with larger values replaces, never adds; a legacy row without `jansData`, a row
//! whose `dat` does not decode and a `jansLockStatEntry` table (ignored) are there too; `authstat
//! import janssen` brings the older months, twice with the same result.

use std::sync::atomic::Ordering;

use authstat_core::Month;
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::ingest::ParseErrorKind;
use authstat_test_support::db;
use base64::Engine as _;

use crate::support::*;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Postgres,
    Mariadb,
}

/// Janssen's database with its statistics tables.
struct JanssenDb {
    kind: Kind,
    /// The administrator's URL of the database.
    admin: String,
    /// The read-only user's URL.
    reader: String,
}

impl JanssenDb {
    fn new(kind: Kind) -> Self {
        let admin = match kind {
            Kind::Postgres => db::postgres("jans"),
            Kind::Mariadb => db::mysql("jans"),
        };
        let db_name = admin.rsplit_once('/').unwrap().1.to_owned();
        let reader_name = format!("reader_{db_name}");
        let this = Self {
            kind,
            reader: String::new(),
            admin,
        };
        // Janssen's setup DDL (jans-linux-setup), and Jans Lock's table beside it.
        for table in ["jansStatEntry", "jansLockStatEntry"] {
            this.exec(&this.quoted(&format!(
                "CREATE TABLE `{table}` (doc_id VARCHAR(64) NOT NULL UNIQUE, \
                 `objectClass` VARCHAR(48), dn VARCHAR(128), `jansId` VARCHAR(128), dat TEXT, \
                 `jansData` TEXT, attr TEXT, PRIMARY KEY (doc_id)); \
                 CREATE INDEX `{table}_jansId` ON `{table}` (`jansId`);"
            )));
        }
        // The read-only user of docs/janssen.md.
        let grant = match kind {
            Kind::Postgres => format!(
                "CREATE ROLE {reader_name} LOGIN PASSWORD 'reader-pw'; \
                 GRANT CONNECT ON DATABASE {db_name} TO {reader_name}; \
                 GRANT USAGE ON SCHEMA public TO {reader_name}; \
                 GRANT SELECT ON \"jansStatEntry\" TO {reader_name};"
            ),
            Kind::Mariadb => format!(
                "CREATE USER '{reader_name}'@'%' IDENTIFIED BY 'reader-pw'; \
                 GRANT SELECT ON {db_name}.`jansStatEntry` TO '{reader_name}'@'%';"
            ),
        };
        this.exec(&grant);
        let (scheme, rest) = this.admin.split_once("://").unwrap();
        let host_and_db = rest.split_once('@').unwrap().1;
        let reader = format!("{scheme}://{reader_name}:reader-pw@{host_and_db}");
        Self { reader, ..this }
    }

    /// `sql` with backticks as this database quotes names.
    fn quoted(&self, sql: &str) -> String {
        match self.kind {
            Kind::Postgres => sql.replace('`', "\""),
            Kind::Mariadb => sql.to_owned(),
        }
    }

    fn exec(&self, sql: &str) {
        match self.kind {
            Kind::Postgres => db::psql(&self.admin, sql),
            Kind::Mariadb => db::mariadb(&self.admin, sql),
        }
    }

    /// Writes a row as Janssen's `StatService` does: a new row, or the row overwritten.
    fn put(&self, table: &str, row: &Row) {
        let text = |v: &Option<String>| v.as_ref().map_or("NULL".to_owned(), |s| format!("'{s}'"));
        let month = row.month.map(|m| m.to_string());
        self.exec(&self.quoted(&format!(
            "DELETE FROM `{table}` WHERE doc_id = '{id}'; \
             INSERT INTO `{table}` (doc_id, `objectClass`, dn, `jansId`, dat, `jansData`, attr) \
             VALUES ('{id}', 'jansStatEntry', 'jansId={id},ou={dn_month},ou=stat,o=jans', '{id}', \
             {dat}, {data}, {attr});",
            id = row.doc_id,
            dn_month = row.dn_month,
            dat = text(&row.dat),
            data = text(&month),
            attr = text(&Some(row.attr.clone())),
        )));
    }
}

/// A `jansStatEntry` row.
struct Row {
    doc_id: String,
    /// `jansData` (NULL on rows written before the column existed).
    month: Option<Month>,
    dn_month: Month,
    dat: Option<String>,
    attr: String,
}

/// `dat` as Janssen writes it: Base64 of java-hll `HLL(15, 5)` fed with `String.hashCode()`.
fn dat(users: impl IntoIterator<Item = String>) -> String {
    let mut hll = Hll::new(HllParams::janssen());
    for user in users {
        hll.add_raw(HashAlgorithm::JavaStringHashCode.hash(&user));
    }
    base64::engine::general_purpose::STANDARD.encode(hll.to_bytes().unwrap())
}

fn users(prefix: &str, n: usize) -> impl Iterator<Item = String> + '_ {
    (0..n).map(move |i| format!("{prefix}{i}"))
}

fn attr(month: Month, updated: i64, tokens: &str) -> String {
    format!(
        r#"{{"tokenCountPerGrantType": {{{tokens}}}, "lastUpdatedAt": {updated}, "month": "{month}"}}"#
    )
}

fn row(doc_id: &str, month: Month, dat: Option<String>, attr: String) -> Row {
    Row {
        doc_id: doc_id.into(),
        month: Some(month),
        dn_month: month,
        dat,
        attr,
    }
}

/// The stat API's answer for `months`, keyed by month.
fn stat(addr: std::net::SocketAddr, from: Month, to: Month) -> serde_json::Value {
    let r = get(
        addr,
        &format!(
            "/jans-auth/restv1/internal/stat?start-month={from}&end-month={to}&format=jsonmonth"
        ),
        Some(TOKEN),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["response"].clone()
}

fn access_tokens(month: &serde_json::Value, grant: &str) -> u64 {
    month["token_count_per_granttype"][grant]["access_token"]
        .as_u64()
        .unwrap_or(0)
}

/// The whole story on one database; `java_hash`: authstat hashes as Janssen does (MAU is
/// unioned) or not (the larger estimate).
async fn janssen_rows_are_merged(kind: Kind, java_hash: bool) {
    let jans = JanssenDb::new(kind);
    let now: Month = current_month().parse().unwrap();
    let prev = now.pred().unwrap();
    let old: Month = "202201".parse().unwrap();
    let mac = "02-42-AC-11-00-02";
    jans.put(
        "jansStatEntry",
        &row(
            &format!("{mac}_{now}"),
            now,
            Some(dat(users("user", 60))),
            attr(
                now,
                1000,
                r#""authorization_code": {"access_token": 12, "id_token": 12, "refresh_token": 3}"#,
            ),
        ),
    );
    // Written before jansData existed: the month is in attr and dn only.
    jans.put(
        "jansStatEntry",
        &Row {
            month: None,
            ..row(
                &format!("{mac}_{prev}"),
                prev,
                Some(dat(users("user", 10))),
                attr(prev, 900, r#""client_credentials": {"access_token": 5}"#),
            )
        },
    );
    // A host without a MAC, and a `dat` that does not decode (Janssen reads no users).
    jans.put(
        "jansStatEntry",
        &row(
            &format!("null_{now}"),
            now,
            Some("not-an-hll!".into()),
            attr(now, 1000, r#""password": {"access_token": 7}"#),
        ),
    );
    // An old month: only the import reads it.
    jans.put(
        "jansStatEntry",
        &row(
            &format!("{mac}_{old}"),
            old,
            Some(dat(users("old", 25))),
            attr(old, 500, r#""implicit": {"access_token": 100}"#),
        ),
    );
    // Jans Lock's statistics: never read.
    jans.put(
        "jansLockStatEntry",
        &row(
            &format!("{mac}_{now}"),
            now,
            Some(dat(users("lock", 500))),
            attr(now, 1000, r#""authorization_code": {"access_token": 1000}"#),
        ),
    );

    let hash = if java_hash {
        "java_string_hashcode"
    } else {
        "murmur3"
    };
    // OTLP to a receiver built from the official protobuf definitions, with the cluster's MAU.
    let (otlp, otlp_addr) = crate::otlp::http_receiver().await;
    let mut fixture = Fixture::new(&format!(
        "export:\n  otlp:\n    endpoint: http://{otlp_addr}/v1/metrics\n    interval_secs: 1\n    cluster_users: true\n"
    ));
    let config = std::fs::read_to_string(fixture.config_path())
        .unwrap()
        .replace("hash: murmur3", &format!("hash: {hash}"))
        // Snapshots are stored at each flush, like everything read.
        .replace("flush_interval_secs: 3600", "flush_interval_secs: 1")
        .replace(
            "sources:\n",
            &format!(
                "sources:\n  - name: janssen\n    type: janssen_stat_entries\n    url: {}\n    poll_interval_ms: 100\n",
                jans.reader
            ),
        );
    std::fs::write(fixture.config_path(), config).unwrap();
    // authstat's own users this month: one of them (user1) Janssen counted too.
    fixture.add_current_month_users(&["user1", "own-a", "own-b"]);

    let check = run_ok(
        authstat()
            .arg("check-config")
            .arg(fixture.config_path())
            .arg("--skip-backend"),
    );
    let said = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        said.contains(if java_hash {
            "unioned with authstat's"
        } else {
            "the larger of the two estimates"
        }),
        "{said}"
    );
    assert!(
        !said.contains("reader-pw"),
        "the password is never shown: {said}"
    );

    let agent = start_and_flush(&fixture).await;
    let stats = agent.stats.clone();
    wait_until("three Janssen rows stored", || {
        stats.snapshots.applied.load(Ordering::Relaxed) >= 3
    });
    let addr = agent.addr;
    let expected_users = |janssen: u64| {
        if java_hash {
            janssen + 2
        } else {
            janssen.max(3)
        }
    };
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = serde_json::Value::Null;
        wait_until("the API to show Janssen's rows", || {
            answer = stat(addr, prev, now);
            access_tokens(&answer[now.to_string()], "password") == 7
        });
        answer
    })
    .await
    .unwrap();
    let this = &answer[now.to_string()];
    assert_eq!(access_tokens(this, "authorization_code"), 12, "{answer}");
    assert_eq!(
        this["token_count_per_granttype"]["authorization_code"]["refresh_token"],
        3
    );
    assert_eq!(this["monthly_active_users"], expected_users(60), "{answer}");
    let before = &answer[prev.to_string()];
    assert_eq!(access_tokens(before, "client_credentials"), 5, "{answer}");
    assert_eq!(before["monthly_active_users"], 10, "{answer}");
    assert_eq!(
        stats.reading.skipped_by_kind[ParseErrorKind::WrongType.index()].load(Ordering::Relaxed),
        1,
        "the undecodable dat is counted"
    );

    // Janssen overwrites its row with larger running totals: the new values, not their sum.
    jans.put(
        "jansStatEntry",
        &row(
            &format!("{mac}_{now}"),
            now,
            Some(dat(users("user", 80))),
            attr(
                now,
                2000,
                r#""authorization_code": {"access_token": 20, "id_token": 20, "refresh_token": 4}"#,
            ),
        ),
    );
    let (answer, metrics) = tokio::task::spawn_blocking(move || {
        let mut answer = serde_json::Value::Null;
        wait_until("the API to show the overwritten row", || {
            answer = stat(addr, now, now);
            access_tokens(&answer[now.to_string()], "authorization_code") != 12
        });
        (answer, get(addr, "/metrics", None).body)
    })
    .await
    .unwrap();
    let this = &answer[now.to_string()];
    assert_eq!(access_tokens(this, "authorization_code"), 20, "{answer}");
    assert_eq!(this["monthly_active_users"], expected_users(80), "{answer}");
    for line in [
        format!("authstat_janssen_monthly_active_users{{month=\"{now}\"}} 80"),
        format!(
            "authstat_janssen_tokens_issued{{month=\"{now}\",grant_type=\"authorization_code\",token_type=\"access_token\"}} 20"
        ),
        format!(
            "authstat_janssen_tokens_issued{{month=\"{now}\",grant_type=\"password\",token_type=\"access_token\"}} 7"
        ),
        "authstat_snapshots_total{result=\"applied\"} 4".to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
    // OTLP carries the same figures, and the cluster's MAU merged as the stat API's.
    let month_attr = format!("month={now}");
    let pushed = move |metric: &str, attrs: &str| -> Option<i64> {
        let received = otlp.received.lock().unwrap();
        received.iter().rev().find_map(|r| {
            crate::otlp::flatten(r)
                .1
                .get(&(metric.to_owned(), attrs.to_owned()))
                .map(|(v, _)| *v)
        })
    };
    let tokens_attrs =
        format!("{month_attr},grant_type=authorization_code,token_type=access_token");
    let expected = expected_users(80) as i64;
    tokio::task::spawn_blocking(move || {
        wait_until("an export of the overwritten row", || {
            pushed("authstat.janssen_tokens_issued", &tokens_attrs) == Some(20)
                && pushed("authstat.cluster_monthly_active_users", &month_attr) == Some(expected)
        });
        assert_eq!(
            pushed("authstat.janssen_monthly_active_users", &month_attr),
            Some(80)
        );
    })
    .await
    .unwrap();
    agent.shutdown().await;

    // `authstat query` reads the same merged figures; then the history is imported, twice.
    let query = |month: Month| -> serde_json::Value {
        let out = run_ok(
            authstat()
                .args(["query", "--format", "json", "--month", &month.to_string()])
                .arg("--config")
                .arg(fixture.config_path()),
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let queried = query(now);
    assert_eq!(
        queried["months"][0]["monthly_active_users"],
        expected_users(80),
        "{queried}"
    );
    assert_eq!(
        query(old)["months"],
        serde_json::json!([]),
        "not imported yet"
    );
    // `import janssen` (the type's start) and `import` (the only source that keeps a history).
    for args in [
        &["import", "janssen", "--config"][..],
        &["import", "--config"],
    ] {
        let out = run_ok(authstat().args(args).arg(fixture.config_path()));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(said.contains("imported 4 rows"), "{said}");
        let progress = String::from_utf8_lossy(&out.stderr);
        assert!(progress.contains("4 rows read"), "{progress}");
        assert!(!progress.contains("reader-pw") && !said.contains("reader-pw"));
        let old_month = &query(old)["months"][0];
        assert_eq!(old_month["monthly_active_users"], 25, "{old_month}");
        assert_eq!(
            old_month["tokens"]["implicit"]["access_token"], 100,
            "{old_month}"
        );
        let this = &query(now)["months"][0];
        assert_eq!(
            this["tokens"]["authorization_code"]["access_token"], 20,
            "the import replaced, it did not add: {this}"
        );
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janssen_rows_on_postgres_are_merged_with_the_larger_estimate() {
    janssen_rows_are_merged(Kind::Postgres, false).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janssen_rows_on_mariadb_are_merged_by_union() {
    janssen_rows_are_merged(Kind::Mariadb, true).await;
}

/// Janssen's database is not ready when the agent starts (the table is not there yet): the
/// agent runs, `/readyz` and the metrics say why, the password is in neither; once the table
/// is there its rows are read at the next poll.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_janssen_database_that_is_not_ready_is_read_once_it_is() {
    let admin = db::postgres("jans_late");
    // The administrator's URL with a password that must never be shown (trust authentication
    // ignores it).
    let url = admin.replacen("postgres@", "postgres:hidden-pw@", 1);
    let fixture = Fixture::new("");
    let config = std::fs::read_to_string(fixture.config_path())
        .unwrap()
        .replace("flush_interval_secs: 3600", "flush_interval_secs: 1")
        .replace(
            "sources:\n",
            &format!(
                "sources:\n  - name: janssen\n    type: janssen_stat_entries\n    url: {url}\n    table: jansStatLater\n    poll_interval_ms: 100\n"
            ),
        );
    std::fs::write(fixture.config_path(), config).unwrap();
    let agent = start_and_flush(&fixture).await;
    let addr = agent.addr;
    let now: Month = current_month().parse().unwrap();
    let (ready, metrics) = tokio::task::spawn_blocking(move || {
        let mut ready = get(addr, "/readyz", None);
        wait_until("/readyz to name the source", || {
            ready = get(addr, "/readyz", None);
            ready.body.contains("source janssen")
        });
        (ready, get(addr, "/metrics", None).body)
    })
    .await
    .unwrap();
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert!(ready.body.contains("jansStatLater"), "{}", ready.body);
    assert!(!ready.body.contains("hidden-pw"), "{}", ready.body);
    assert!(
        metrics.contains("authstat_source_errors_total{source=\"janssen\",reason=\"unavailable\"}"),
        "{metrics}"
    );

    db::psql(
        &admin,
        &format!(
            "CREATE TABLE \"jansStatLater\" (doc_id VARCHAR(64) NOT NULL UNIQUE, \
             \"objectClass\" VARCHAR(48), dn VARCHAR(128), \"jansId\" VARCHAR(128), dat TEXT, \
             \"jansData\" TEXT, attr TEXT, PRIMARY KEY (doc_id)); \
             INSERT INTO \"jansStatLater\" (doc_id, dn, dat, \"jansData\", attr) VALUES \
             ('null_{now}', 'jansId=null_{now},ou={now},ou=stat,o=jans', '{}', '{now}', '{}');",
            dat(users("late", 5)),
            attr(now, 1, r#""client_credentials": {"access_token": 9}"#)
        ),
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut answer = serde_json::Value::Null;
        wait_until("the rows to be read", || {
            answer = stat(addr, now, now);
            access_tokens(&answer[now.to_string()], "client_credentials") == 9
        });
        wait_until("/readyz to be ready", || {
            get(addr, "/readyz", None).status == 200
        });
        answer
    })
    .await
    .unwrap();
    assert_eq!(
        answer[now.to_string()]["monthly_active_users"],
        5,
        "{answer}"
    );
    agent.shutdown().await;
}

/// `authstat import` with no source that keeps statistics of its own (the example's file
/// sources), or a type that is not one: a usage error (64) naming the types that can.
#[test]
fn import_without_a_source_to_import_from_is_a_usage_error() {
    let fixture = Fixture::new("");
    for args in [
        &["import", "--config"][..],
        &["import", "janssen", "--config"],
    ] {
        let out = authstat()
            .args(args)
            .arg(fixture.config_path())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{said}");
        assert!(said.contains("to import from"), "{said}");
        assert!(said.contains("janssen_stat_entries"), "{said}");
    }
}
