//! The connection to the broker: connecting with backoff, subscribing, receipts of
//! acknowledgements, and forgetting the ids of messages whose acknowledgement is settled.

use super::*;

impl Activemq {
    /// Drops the connection after `why`; the next attempt goes to the next broker.
    pub(super) fn lost(&mut self, why: String) {
        self.conn = None;
        self.acking.clear();
        for counted in self.counted.values_mut() {
            counted.ack = None;
        }
        let pause = self.backoff.failed(Instant::now());
        self.problem = Some(SourceProblem {
            place: self.place(),
            reason: "unavailable",
            message: format!(
                "{why} (attempt {}; next in {:.1} s)",
                self.backoff.failures(),
                pause.as_secs_f64()
            ),
        });
        self.fresh_problem = true;
    }

    /// Connects to the next broker if it is time to.
    pub(super) fn connect(&mut self) {
        if self.conn.is_some() || !self.backoff.ready(Instant::now()) {
            return;
        }
        self.attempts += 1;
        let n = self.config.brokers.len();
        let mut errors = Vec::new();
        for _ in 0..n {
            let broker = self.config.brokers[self.next_broker % n].clone();
            self.next_broker = (self.next_broker + 1) % n;
            let login = self
                .config
                .username
                .as_deref()
                .map(|u| (u, self.config.password.as_deref().unwrap_or("")));
            let tls = match (broker.starts_with(stomp::TLS_SCHEME), &self.tls) {
                (false, _) => None,
                (true, Some(config)) => Some(config.clone()),
                (true, None) => match stomp::tls_config() {
                    Ok(config) => Some(self.tls.insert(config).clone()),
                    Err(e) => {
                        errors.push(format!("{broker}: {e}"));
                        continue;
                    }
                },
            };
            let subscribed = Connection::open(&broker, tls.as_ref(), login, CONNECT_TIMEOUT)
                .and_then(|mut c| {
                    let prefetch = self.config.prefetch.to_string();
                    c.send(&encode(
                        "SUBSCRIBE",
                        &[
                            ("id", "0"),
                            ("destination", &format!("/queue/{}", self.config.queue)),
                            ("ack", "client-individual"),
                            ("activemq.prefetchSize", &prefetch),
                        ],
                        "",
                    ))?;
                    Ok(c)
                });
            match subscribed {
                Ok(conn) => {
                    tracing::info!(source = %self.name, broker = %broker, queue = %self.config.queue, "connected");
                    self.conn = Some(conn);
                    self.generation += 1;
                    self.problem = None;
                    self.backoff.connected(Instant::now());
                    self.connected_at = Some(Instant::now());
                    self.last_message_at = None;
                    return;
                }
                Err(e) => errors.push(format!("{broker}: {e}")),
            }
        }
        self.lost(errors.join("; "));
        // Said by `poll` (which the pipeline reports once per new problem), not by reads too.
        self.fresh_problem = false;
    }

    /// A receipt for acknowledgements: their ids are settled (forgotten).
    pub(super) fn receipt(&mut self, frame: &stomp::Frame) {
        if let Some(ids) = frame
            .header("receipt-id")
            .and_then(|r| self.acking.remove(r))
        {
            for id in ids {
                self.counted.remove(&id);
            }
        }
    }

    /// Forgets the ids counted before this connection that the broker has not delivered again
    /// although it could have: it redelivers every unacknowledged message to a new
    /// subscription at once, as far as the prefetch allows, so an id it has not sent again
    /// after [`SETTLED_AFTER`] of quiet, with room left in the prefetch, was acknowledged (its
    /// receipt was lost with a crash or a stop). Keeps the stored position to what may still
    /// come (it used to keep such ids for [`FORGET_AFTER_MS`]).
    pub(super) fn forget_settled(&mut self) {
        let now = Instant::now();
        let quiet =
            |at: Option<Instant>| at.is_none_or(|at| now.duration_since(at) >= SETTLED_AFTER);
        if self.conn.is_none()
            || !quiet(self.connected_at)
            || !quiet(self.last_message_at)
            || self.counted.values().all(|c| c.ack.is_some())
        {
            return;
        }
        let generation = self.generation;
        let outstanding = self
            .counted
            .values()
            .filter(|c| c.ack.as_ref().is_some_and(|(g, _)| *g == generation))
            .count();
        if outstanding < self.config.prefetch as usize {
            self.counted.retain(|_, c| c.ack.is_some());
        }
    }
}
