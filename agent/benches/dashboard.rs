//! The dashboard page end to end: an agent on a SQLite file that holds 10 nodes × 24 months
//! (FULL HLLs at Janssen's setting, 40 token counters a month), and `GET /dashboard` of the 24
//! months over a real socket (merged read, the nodes' months, rendering, HTTP). Target: ≤ 50 ms.
//! Figures: `docs/benchmarks.md`.

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use authstat_core::counters::{CounterKey, Counters};
use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};
use authstat_core::store::{ClaimRequest, FlushBatch, Instance, MonthFlush, TakeOver};
use authstat_core::{Month, NodeId};
use criterion::{Criterion, criterion_group, criterion_main};

const NODES: usize = 10;

fn months() -> Vec<Month> {
    (2023..=2024)
        .flat_map(|y| (1..=12).map(move |m| Month::new(y, m).unwrap()))
        .collect()
}

fn counters() -> Counters {
    let mut c = Counters::default();
    for g in [
        "authorization_code",
        "client_credentials",
        "refresh_token",
        "password",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:openid:params:grant-type:ciba",
        "urn:ietf:params:oauth:grant-type:uma-ticket",
        "implicit",
        "token_exchange",
        "other",
    ] {
        for t in ["access_token", "id_token", "refresh_token", "uma_token"] {
            let key = CounterKey::Token {
                grant_type: g.into(),
                token_type: t.into(),
            };
            c.add(&key, 7);
        }
    }
    c
}

/// Fills `path` with the nodes' months.
fn fill(path: &std::path::Path, rt: &tokio::runtime::Runtime) {
    let config = authstat_backends::options::SqliteConfig::backend(
        &authstat_backends::options::SqliteConfig {
            path: path.to_path_buf(),
            ..serde_yaml::from_str("{path: x}").unwrap()
        },
    );
    let store = rt.block_on(authstat_backends::build(&config)).unwrap();
    for n in 0..NODES {
        let node = NodeId::new(format!("node-{n}")).unwrap();
        rt.block_on(store.claim_node(&ClaimRequest {
            node: node.clone(),
            instance: Instance {
                id: format!("bench-{n}"),
                host: "bench".into(),
                pid: 1,
                started_at_ms: 0,
                locality: String::new(),
            },
            until_ms: 0,
            now_ms: 0,
            take_over: TakeOver::Never,
        }))
        .unwrap();
        let batch = FlushBatch {
            node,
            epoch: 1,
            lease_until_ms: 0,
            seq: 1,
            months: months()
                .into_iter()
                .map(|month| {
                    let mut users = Hll::new(HllParams::janssen());
                    for i in 0..30_000 {
                        users.add_raw(HashAlgorithm::Murmur3.hash(&format!("{n}-{month}-{i}")));
                    }
                    MonthFlush {
                        month,
                        users,
                        counter_deltas: counters(),
                        clients: None,
                        dims: Vec::new(),
                    }
                })
                .collect(),
            positions: None,
        };
        rt.block_on(store.flush(&batch)).unwrap();
    }
}

fn get(addr: SocketAddr, target: &str) -> usize {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = Vec::new();
    stream.read_to_end(&mut body).unwrap();
    assert!(
        body.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&body[..200.min(body.len())])
    );
    body.len()
}

fn dashboard(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = dir.path().join("authstat.db");
    fill(&db, &rt);
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let config_path = dir.path().join("authstat.yaml");
    std::fs::write(
        &config_path,
        format!(
            "node_id: bench-agent\nlisten_addr: 127.0.0.1:0\nfold_silent_nodes_after_secs: 0\n\
             sources:\n  - name: audit\n    type: file\n    format: janssen_audit\n    paths: [logs/*.log]\n\
             backend:\n  type: sqlite\n  path: {}\napi:\n  dashboard:\n    anonymous: true\n",
            db.display()
        ),
    )
    .unwrap();
    let config = authstat_config::load(&config_path, &std::collections::HashMap::new()).unwrap();
    let resolved = authstat::resolve::resolve(&config_path, config).unwrap();
    let agent = rt
        .block_on(authstat::start(resolved, Default::default()))
        .unwrap();
    let addr = agent.addr;
    let target = "/dashboard?from=202301&to=202412";
    let bytes = get(addr, target);
    eprintln!(
        "dashboard page: {bytes} bytes with headers, 24 months, {} nodes",
        NODES + 1
    );
    c.bench_function("dashboard_24_months_10_nodes", |b| {
        b.iter(|| black_box(get(addr, black_box(target))))
    });
    rt.block_on(agent.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = dashboard
}
criterion_main!(benches);
