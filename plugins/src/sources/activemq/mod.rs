//! `type: activemq`: Janssen's audit queue (`oauth2.audit.logging`) on ActiveMQ, over STOMP.
//!
//! Janssen configured with `jmsBrokerURISet` sends each audit record to the queue as a JMS
//! `TextMessage` (the same JSON it would write to its audit file, which it then writes only
//! when sending fails). This source subscribes with client-individual acknowledgement and
//! hands each message's record to the pipeline.
//!
//! # Exactly once
//! A message is acknowledged only after the flush that holds what it counted is stored: the
//! ids of the messages counted and not yet acknowledged are this source's position, stored in
//! the same atomic flush as the counts. [`Source::acknowledge`] then acknowledges them, each
//! batch of acknowledgements ending with a receipt; an id leaves the position only when the
//! broker confirmed it. After a crash between the commit and the acknowledgement the broker
//! delivers those messages again: their ids are in the stored position, so they are recognised
//! and acknowledged, not counted. A message counted but not stored (the agent died before its
//! flush) was never acknowledged either: the broker delivers it again and it is counted then.
//!
//! # Connections
//! The brokers are tried in turn (failover); a lost connection is tried again with a backoff
//! from `poll_interval_ms` up to 30 s. Until connected, the source reports a problem
//! (`/readyz`, `authstat_source_errors_total{reason="unavailable"}`); `status().open` is 1
//! while connected.

mod connection;
mod options;
pub mod stomp;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use authstat_core::ingest::Parser;
use authstat_core::month::now_ms;
use authstat_core::source::{Origin, Source, SourceEvent, SourceProblem, SourceStatus};
use authstat_core::store::SourcePosition;
use serde::{Deserialize, Serialize};

pub(super) use options::certificates;
pub(super) use options::check;
pub use options::{ACTIVEMQ, ActivemqConfig, StompTls};

use crate::backoff::Backoff;
use crate::registry::{BuildError, SourceSpec};
use stomp::{Connection, encode};

/// Connecting and logging in may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest pause between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lasted this long starts the pauses again from the first.
const STABLE_AFTER: Duration = Duration::from_secs(10);
/// Ids stored longer than this are forgotten: a message the broker has not delivered again by
/// then was acknowledged (its receipt was lost with a crash).
const FORGET_AFTER_MS: i64 = 7 * 86_400_000;
/// A connection quiet this long (no message delivered) with room in its prefetch has had every
/// unacknowledged message delivered again ([`Activemq::forget_settled`]).
const SETTLED_AFTER: Duration = Duration::from_secs(3);
/// How long a clean stop waits for the receipts of its last acknowledgements.
const SETTLE_WAIT: Duration = Duration::from_secs(2);
/// How long one read waits for the first frame (the pipeline calls often).
const READ_WAIT: Duration = Duration::from_millis(5);

/// Builds an `activemq` source.
pub(super) fn build(spec: SourceSpec<'_>) -> Result<Box<dyn Source>, BuildError> {
    let config =
        &ActivemqConfig::decode(&spec.config.options).map_err(|e| spec.option_error(&e))?;
    let parser = spec.parser.ok_or_else(|| BuildError::Option {
        key: format!("{}.format", spec.key),
        message: "type activemq needs the format of its messages (janssen_audit)".into(),
    })?;
    let mut source = Activemq::new(spec.config.name.clone(), config, parser);
    if let Some(tls) = &config.tls {
        let built =
            stomp::tls_config_of(tls, spec.base).map_err(|(key, message)| BuildError::Option {
                key: format!("{}.{key}", spec.key),
                message,
            })?;
        source.tls = Some(built);
    }
    let key = source.position_key();
    if let Some(stored) = spec
        .positions
        .iter()
        .find(|p| p.source == spec.config.name && p.key == key)
    {
        let stored: Stored =
            serde_json::from_str(&stored.data).map_err(|e| BuildError::Option {
                key: spec.key.clone(),
                message: format!("its stored position does not decode: {e}"),
            })?;
        let now = now_ms();
        for (id, at_ms) in stored.counted {
            if now - at_ms < FORGET_AFTER_MS {
                source.counted.insert(id, Counted { at_ms, ack: None });
            }
        }
    }
    Ok(Box::new(source))
}

/// The stored position: the ids of messages counted and not yet acknowledged, with when.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Stored {
    counted: Vec<(String, i64)>,
}

/// A message whose record was counted and whose acknowledgement is not confirmed.
#[derive(Debug, Clone)]
struct Counted {
    at_ms: i64,
    /// The connection (its number) and the ack id it was delivered with last, if delivered on
    /// the current connection.
    ack: Option<(u64, String)>,
}

/// The source (see the module docs).
pub(crate) struct Activemq {
    name: String,
    config: ActivemqConfig,
    parser: Box<dyn Parser>,
    conn: Option<Connection>,
    /// For `stomp+ssl://` brokers: loaded at the first such connection.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Connections made so far (ack ids are valid on their own connection only).
    generation: u64,
    next_broker: usize,
    /// When to try the brokers again after a failure ([`crate::backoff`]).
    backoff: Backoff,
    /// Connection attempts so far (each tries every broker once).
    attempts: u64,
    /// When the current connection was made, and when it last delivered a message.
    connected_at: Option<Instant>,
    last_message_at: Option<Instant>,
    problem: Option<SourceProblem>,
    /// A problem that arose since the last read (a read reports it once, not at every read
    /// while it waits to reconnect; `poll` keeps reporting it for `/readyz`).
    fresh_problem: bool,
    counted: BTreeMap<String, Counted>,
    /// Acknowledgements sent, by the receipt that confirms them.
    acking: HashMap<String, Vec<String>>,
    receipts: u64,
    /// Messages received (the origin offset of logs).
    received: u64,
}

impl std::fmt::Debug for Activemq {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Activemq")
            .field("name", &self.name)
            .field("brokers", &self.config.brokers)
            .field("queue", &self.config.queue)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl Activemq {
    fn new(name: String, config: &ActivemqConfig, parser: Box<dyn Parser>) -> Self {
        Self {
            name,
            config: config.clone(),
            parser,
            conn: None,
            tls: None,
            generation: 0,
            next_broker: 0,
            backoff: Backoff::new(
                Duration::from_millis(config.poll_interval_ms),
                MAX_BACKOFF,
                STABLE_AFTER,
            ),
            attempts: 0,
            connected_at: None,
            last_message_at: None,
            problem: None,
            fresh_problem: false,
            counted: BTreeMap::new(),
            acking: HashMap::new(),
            receipts: 0,
            received: 0,
        }
    }

    fn position_key(&self) -> String {
        let key = format!("queue:{}", self.config.queue);
        key.chars().take(255).collect()
    }

    fn place(&self) -> String {
        format!(
            "queue {} on {}",
            self.config.queue,
            self.config.brokers.join(", ")
        )
    }

    /// Receives what is there, up to `budget` messages, handing new records to `on_event`.
    fn pump(&mut self, budget: usize, on_event: &mut dyn FnMut(SourceEvent<'_>)) -> usize {
        let mut handed = 0;
        let mut wait = READ_WAIT;
        while handed < budget {
            let Some(conn) = self.conn.as_mut() else {
                break;
            };
            let frame = match conn.receive(wait) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    self.lost(e.to_string());
                    break;
                }
            };
            wait = Duration::from_millis(1);
            match frame.command.as_str() {
                "MESSAGE" => {
                    let Some(id) = frame.header("message-id").map(str::to_owned) else {
                        continue;
                    };
                    let ack = frame.header("ack").unwrap_or(&id).to_owned();
                    self.last_message_at = Some(Instant::now());
                    self.received += 1;
                    handed += 1;
                    if let Some(counted) = self.counted.get_mut(&id) {
                        // Delivered again: counted before (stored, or waiting for the next
                        // flush). Acknowledged after the next flush; never counted twice.
                        counted.ack = Some((self.generation, ack));
                        continue;
                    }
                    self.counted.insert(
                        id,
                        Counted {
                            at_ms: now_ms(),
                            ack: Some((self.generation, ack)),
                        },
                    );
                    let place = format!("queue {}", self.config.queue);
                    on_event(SourceEvent::Record {
                        parsed: self.parser.parse(&frame.body),
                        origin: Origin {
                            place: &place,
                            offset: self.received,
                        },
                    });
                }
                "RECEIPT" => self.receipt(&frame),
                "ERROR" => {
                    let message = frame.header("message").unwrap_or("ERROR frame").to_owned();
                    self.lost(format!("the broker reported an error: {message}"));
                    break;
                }
                _ => {}
            }
        }
        handed
    }
}

impl Source for Activemq {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.poll_interval_ms)
    }

    fn inputs(&self) -> Vec<String> {
        vec![self.place()]
    }

    fn poll(&mut self) -> Vec<SourceProblem> {
        self.connect();
        // Ids delivered long ago and never again were acknowledged (a lost receipt).
        let now = now_ms();
        self.counted
            .retain(|_, c| c.ack.is_some() || now - c.at_ms < FORGET_AFTER_MS);
        self.forget_settled();
        self.problem.iter().cloned().collect()
    }

    fn read(
        &mut self,
        budget: usize,
        on_event: &mut dyn FnMut(SourceEvent<'_>),
    ) -> (usize, Vec<SourceProblem>) {
        // About one message per 500 bytes of budget.
        let handed = self.pump((budget / 512).max(1), on_event);
        let problems = if std::mem::take(&mut self.fresh_problem) {
            self.problem.iter().cloned().collect()
        } else {
            Vec::new()
        };
        (handed, problems)
    }

    fn positions(&self) -> Vec<SourcePosition> {
        let stored = Stored {
            counted: self
                .counted
                .iter()
                .map(|(id, c)| (id.clone(), c.at_ms))
                .collect(),
        };
        vec![SourcePosition {
            source: self.name.clone(),
            key: self.position_key(),
            data: serde_json::to_string(&stored).expect("plain data"),
        }]
    }

    fn acknowledge(&mut self, durable: &[SourcePosition]) {
        let Some(stored) = durable
            .iter()
            .find(|p| p.key == self.position_key())
            .and_then(|p| serde_json::from_str::<Stored>(&p.data).ok())
        else {
            return;
        };
        let in_flight: std::collections::HashSet<&String> =
            self.acking.values().flatten().collect();
        let mut acks = Vec::new();
        for (id, _) in &stored.counted {
            if in_flight.contains(id) {
                continue;
            }
            if let Some(Counted {
                ack: Some((generation, ack)),
                ..
            }) = self.counted.get(id)
                && *generation == self.generation
            {
                acks.push((id.clone(), ack.clone()));
            }
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if acks.is_empty() {
            return;
        }
        self.receipts += 1;
        let receipt = format!("ack-{}", self.receipts);
        let last = acks.len() - 1;
        let mut wire = Vec::new();
        for (i, (_, ack)) in acks.iter().enumerate() {
            if i == last {
                wire.extend(encode("ACK", &[("id", ack), ("receipt", &receipt)], ""));
            } else {
                wire.extend(encode("ACK", &[("id", ack)], ""));
            }
        }
        match conn.send(&wire) {
            Ok(()) => {
                self.acking
                    .insert(receipt, acks.into_iter().map(|(id, _)| id).collect());
            }
            Err(e) => self.lost(format!("acknowledging: {e}")),
        }
    }

    fn await_receipts(&mut self) -> bool {
        let before = self.counted.len();
        let deadline = Instant::now() + SETTLE_WAIT;
        while !self.acking.is_empty() && Instant::now() < deadline {
            let Some(conn) = self.conn.as_mut() else {
                break;
            };
            match conn.receive(Duration::from_millis(20)) {
                // Messages delivered now are neither counted nor acknowledged: the broker
                // delivers them again to the next subscription.
                Ok(Some(frame)) if frame.command == "RECEIPT" => self.receipt(&frame),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.counted.len() != before
    }

    fn status(&self) -> SourceStatus {
        SourceStatus {
            open: u64::from(self.conn.is_some()),
            lag: self.counted.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};

    fn source(broker: String, poll_interval_ms: u64) -> Activemq {
        let config = ActivemqConfig {
            brokers: vec![broker],
            queue: "jans.audit".into(),
            username: None,
            password: None,
            prefetch: 10,
            poll_interval_ms,
            tls: None,
        };
        Activemq::new(
            "queue".into(),
            &config,
            Box::new(crate::parse::JanssenAuditParser),
        )
    }

    /// Reads and drops events.
    fn read(source: &mut Activemq) -> Vec<SourceProblem> {
        source.read(64 * 1024, &mut |_| {}).1
    }

    #[test]
    fn a_broker_that_is_down_is_tried_again_after_the_pause_not_at_every_poll() {
        // Bound, not listening: refuses connections, and nobody else can take the port.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut s = source(socket.local_addr().unwrap().to_string(), 20_000);
        let mut reported = 0;
        for _ in 0..200 {
            assert_eq!(s.poll().len(), 1, "the problem stands on /readyz");
            reported += read(&mut s).len();
        }
        assert_eq!(s.attempts, 1, "one attempt within the first pause");
        assert_eq!(
            reported, 0,
            "a failed connect is reported by poll, not by every read"
        );
        let problem = &s.problem.as_ref().unwrap().message;
        assert!(problem.contains("attempt 1; next in 20.0 s"), "{problem}");
        drop(socket);
    }

    #[test]
    fn a_broker_that_drops_every_connection_at_once_is_retried_with_growing_pauses() {
        // A "broker" (restarting) that completes the STOMP handshake and closes at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let mut accepted = 0;
            for stream in listener.incoming().take(4) {
                let mut stream = stream.unwrap();
                let mut byte = [0u8; 1];
                // CONNECT (or STOMP) up to its NUL.
                while stream.read(&mut byte).unwrap_or(0) == 1 && byte[0] != 0 {}
                let _ = stream.write_all(b"CONNECTED\nversion:1.2\n\n\0");
                accepted += 1;
            }
            accepted
        });
        let mut s = source(addr.to_string(), 20);
        let mut pauses = Vec::new();
        while s.attempts < 4 {
            s.poll();
            read(&mut s);
            if let Some(at) = s.backoff.retry_at()
                && pauses.len() < s.backoff.failures() as usize
            {
                pauses.push(at);
            }
            // Explicit synchronisation: wait until the backoff allows the next attempt.
            while !s.backoff.ready(Instant::now()) {
                std::thread::yield_now();
            }
        }
        assert_eq!(server.join().unwrap(), 4, "four connections made");
        // Each connection lasted no time: 20, 40, 80 ms and on, never 20 ms again.
        let problem = &s.problem.as_ref().unwrap().message;
        assert!(problem.contains("attempt 4; next in 0.2 s"), "{problem}");
        assert_eq!(s.backoff.failures(), 4);
    }
}
