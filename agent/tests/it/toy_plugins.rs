//! The plugin seams from outside: a toy source kind, a toy record format and a toy exporter,
//! defined here (not in the crates that define the contracts), each with its own options type
//! and one registration (`Plugins::with_source`, `with_format`, `Exporters::with`), configured
//! by `type`, `format` and the `export:` key, and run by the real agent: records stored once,
//! positions committed with them and acknowledged after each durable flush, resumed after a
//! restart; the exporter started and stopped with the agent. (The toy backend, with the
//! conformance suite, is in `backends/tests/it/toy/`.)

use std::sync::Mutex;
use std::time::Duration;

use authstat_core::event::{AuditAction, Event, Tenant, UserActivity};
use authstat_core::ingest::{Frame, ParseError, ParseErrorKind, Parser};
use authstat_core::source::{Origin, Source, SourceEvent, SourceProblem, SourceStatus};
use authstat_core::store::SourcePosition;
use authstat_plugins::Plugins;
use authstat_plugins::options::OptionError;
use authstat_plugins::registry::{BuildError, Format, SourceKind, SourceSpec};

use crate::support::wait_until;

/// `user,epoch_ms,true|false` per line.
#[derive(Debug)]
struct ToyFormat;

impl Parser for ToyFormat {
    fn format(&self) -> &'static str {
        "toy_lines"
    }

    fn frame(&self, buf: &[u8]) -> Frame {
        match memchr_newline(buf) {
            Some(end) => Frame::Record { len: end + 1 },
            None => Frame::Incomplete,
        }
    }

    fn parse<'a>(&self, record: &'a [u8]) -> Result<Event<'a>, ParseError> {
        let text = std::str::from_utf8(record).map_err(|_| ParseError {
            kind: ParseErrorKind::InvalidUtf8,
            message: "not text".into(),
        })?;
        let mut parts = text.trim_end().split(',');
        let bad = || ParseError {
            kind: ParseErrorKind::MalformedJson,
            message: format!("not a toy line: {text:?}"),
        };
        let (user, ts, ok) = (
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
            parts.next().ok_or_else(bad)?,
        );
        // The neutral record itself: a user's authentication, the user active by the
        // configured actions.
        Ok(Event {
            timestamp: ts.parse().map_err(|_| bad())?,
            action: Some(AuditAction::UserAuthorization),
            success: ok == "true",
            authentication: true,
            user: Some(user.into()),
            user_activity: UserActivity::ByAction,
            client: None,
            tenant: Tenant::None,
            tokens: None,
            ip: None,
        })
    }

    fn oversized_record_end(&self, buf: &[u8]) -> Option<usize> {
        memchr_newline(buf).map(|i| i + 1)
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Every position a toy source was told is durable.
static ACKNOWLEDGED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Hands out the `lines` of its options, one record each, in order; its position is how many.
#[derive(Debug)]
struct ToySource {
    name: String,
    lines: Vec<String>,
    next: usize,
    parser: Box<dyn Parser>,
}

fn position(data: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    v["next"].as_u64().unwrap()
}

impl Source for ToySource {
    fn name(&self) -> &str {
        &self.name
    }
    fn poll_interval(&self) -> Duration {
        Duration::from_millis(50)
    }
    fn poll(&mut self) -> Vec<SourceProblem> {
        Vec::new()
    }
    fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceProblem>) {
        let mut read = 0;
        while self.next < self.lines.len() && read < budget {
            let line = format!("{}\n", self.lines[self.next]);
            let parsed = self.parser.parse(line.as_bytes());
            on_event(SourceEvent::Record {
                parsed,
                origin: Origin {
                    place: &"toy",
                    offset: self.next as u64,
                },
            });
            self.next += 1;
            read += line.len();
        }
        (read, Vec::new())
    }
    fn positions(&self) -> Vec<SourcePosition> {
        vec![SourcePosition {
            source: self.name.clone(),
            key: "toy".into(),
            data: format!("{{\"next\":{}}}", self.next),
        }]
    }
    fn acknowledge(&mut self, durable: &[SourcePosition]) {
        for p in durable {
            ACKNOWLEDGED.lock().unwrap().push(position(&p.data));
        }
    }
    fn status(&self) -> SourceStatus {
        SourceStatus {
            open: 1,
            lag: (self.lines.len() - self.next) as u64,
        }
    }
}

/// The toy source's own options.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ToyOptions {
    lines: Vec<String>,
}

fn check_toy(options: &serde_yaml::Mapping) -> Result<(), OptionError> {
    authstat_plugins::options::decode::<ToyOptions>(options).map(|_| ())
}

fn build_toy(spec: SourceSpec<'_>) -> Result<Box<dyn Source>, BuildError> {
    let ToyOptions { lines } = authstat_plugins::options::decode(&spec.config.options)
        .map_err(|e| spec.option_error(&e))?;
    let next = spec
        .positions
        .iter()
        .find(|p| p.source == spec.config.name)
        .map_or(0, |p| position(&p.data) as usize);
    Ok(Box::new(ToySource {
        name: spec.config.name.clone(),
        lines,
        next,
        parser: spec.parser.expect("a format"),
    }))
}

/// Waits until `agent` has read `n` records.
fn wait_for_records(agent: &authstat::RunningAgent, n: u64) {
    let stats = agent.stats.clone();
    wait_until("the toy records", || {
        stats
            .reading
            .records
            .load(std::sync::atomic::Ordering::Relaxed)
            >= n
    });
}

fn plugins() -> Plugins {
    authstat_plugins::builtin()
        .with_format(Format {
            name: "toy_lines",
            about: "user,epoch_ms,success per line",
            parser: || Box::new(ToyFormat),
        })
        .with_source(SourceKind {
            name: "toy",
            about: "lines from the configuration",
            reads_records: true,
            check: check_toy,
            build: build_toy,
            follows: None,
            note: None,
            certificates: None,
            history: None,
        })
}

async fn start(path: &std::path::Path) -> authstat::RunningAgent {
    let config = authstat_config::load(path, &std::collections::HashMap::new()).unwrap();
    let resolved = authstat::resolve::resolve_with(path, config, plugins()).unwrap();
    authstat::start(resolved, Default::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toy_source_and_format_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authstat.yaml");
    let feb = 1_706_745_600_000u64;
    std::fs::write(
        &path,
        format!(
            "node_id: toy-node\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 3600\n\
             sources:\n  - name: q\n    type: toy\n    format: toy_lines\n    lines: \
             [\"alice,{feb},true\", \"bob,{feb},true\", \"alice,{feb},true\", \"eve,{feb},false\"]\n\
             backend: {{type: sqlite, path: db.sqlite}}\n"
        ),
    )
    .unwrap();
    // Without the registration, the names are unknown.
    let config = authstat_config::load(&path, &std::collections::HashMap::new()).unwrap();
    let err = authstat::resolve::resolve(&path, config)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown source type `toy`"), "{err}");

    let agent = start(&path).await;
    wait_for_records(&agent, 4);
    agent.flush_now();
    wait_until("a flush and its acknowledgement", || {
        ACKNOWLEDGED.lock().unwrap().contains(&4)
    });
    agent.shutdown().await;

    // Restarted: resumes at the stored position, reads nothing twice, and hears at start that
    // the stored position is durable.
    let before = ACKNOWLEDGED.lock().unwrap().len();
    let agent = start(&path).await;
    let stats = agent.stats.clone();
    wait_until("the restarted pipeline", || {
        stats
            .health
            .started
            .load(std::sync::atomic::Ordering::Acquire)
    });
    assert_eq!(ACKNOWLEDGED.lock().unwrap()[before..], [4]);
    agent.flush_now();
    agent.shutdown().await;
    assert_eq!(
        stats
            .reading
            .records
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let store = crate::support::sqlite_store(&dir.path().join("db.sqlite")).await;
    let months = store
        .read_months(&["202402".parse().unwrap()])
        .await
        .unwrap();
    use authstat_core::counters::{CounterKey, Outcome};
    let c = &months[0].counters;
    assert_eq!(c.get(&CounterKey::Authentication(Outcome::Success)), 3);
    assert_eq!(c.get(&CounterKey::Authentication(Outcome::Failure)), 1);
    assert_eq!(months[0].monthly_active_users(), 2);
    let state = store
        .load_node(&authstat_core::NodeId::new("toy-node").unwrap())
        .await
        .unwrap();
    assert_eq!(state.positions[0].data, "{\"next\":4}");
}

/// What the toy exporter saw at its last export: its label and the records read.
static EXPORTED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

/// The toy exporter's own options.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ToyExportOptions {
    label: String,
}

/// An exporter that exports once, at shutdown, what the registry says.
#[derive(Debug)]
struct ToyExporter {
    label: String,
    registry: std::sync::Arc<authstat_core::metrics::Registry>,
}

#[async_trait::async_trait]
impl authstat_export::Exporter for ToyExporter {
    fn name(&self) -> &'static str {
        "toy"
    }

    async fn shutdown(self: Box<Self>, _deadline: Duration) {
        let snapshot = self.registry.snapshot();
        let read = match snapshot.samples("authstat_records_read_total").first() {
            Some(authstat_core::metrics::Sample {
                value: authstat_core::metrics::Value::Int(n),
                ..
            }) => *n,
            _ => 0,
        };
        EXPORTED.lock().unwrap().push((self.label, read));
    }
}

fn toy_exporter() -> authstat_export::ExporterKind {
    authstat_export::ExporterKind {
        name: "toy",
        about: "keeps what it would export",
        check: |o| authstat_plugins::options::decode::<ToyExportOptions>(o).map(|_| ()),
        resolve_paths: |_, _| {},
        settings: |_, _| Ok(vec!["export toy: in memory".into()]),
        start: |spec| {
            let ToyExportOptions { label } = authstat_plugins::options::decode(spec.options)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.key, e.message))?;
            Ok(Box::new(ToyExporter {
                label,
                registry: spec.registry,
            }))
        },
    }
}

/// A toy exporter from outside: its own options, one registration, started and stopped by the
/// real agent, reading the same registry as `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toy_exporter_from_outside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authstat.yaml");
    // A file source (the toy source's acknowledgements belong to the other test).
    let records: String = ["alice", "bob"]
        .iter()
        .map(|u| {
            authstat_test_support::janssen::AuditRecord::new(
                "USER_AUTHORIZATION",
                1_706_745_600_000,
                Some(u),
                true,
            )
            .text()
        })
        .collect();
    std::fs::write(dir.path().join("audit.log"), records).unwrap();
    std::fs::write(
        &path,
        "node_id: toy-export\nlisten_addr: 127.0.0.1:0\nflush_interval_secs: 3600\n\
         sources:\n  - {name: a, type: file, format: janssen_audit, paths: [audit.log]}\n\
         backend: {type: sqlite, path: db.sqlite}\n\
         export:\n  toy:\n    label: from-outside\n",
    )
    .unwrap();
    let config = authstat_config::load(&path, &std::collections::HashMap::new()).unwrap();
    // Without the registration, the exporter is unknown.
    let err = authstat::resolve::resolve(&path, config.clone())
        .unwrap_err()
        .to_string();
    assert!(err.contains("export.toy: unknown exporter `toy`"), "{err}");
    let registries = authstat::resolve::Registries {
        exporters: authstat_export::Exporters::builtin().with(toy_exporter()),
        ..authstat::resolve::Registries::builtin()
    };
    let resolved = authstat::resolve::resolve_against(&path, config, registries).unwrap();
    let agent = authstat::start(resolved, Default::default()).await.unwrap();
    wait_for_records(&agent, 2);
    agent.shutdown().await;
    assert_eq!(
        EXPORTED.lock().unwrap().as_slice(),
        [("from-outside".to_owned(), 2)]
    );
}
