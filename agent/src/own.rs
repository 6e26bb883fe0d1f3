//! One node id, one agent: this process's identity and its claim on the node id.
//!
//! At start the agent claims its node id in the backend ([`claim`]); a live claim by another
//! instance refuses the start ([`ClaimRefused`], exit code 78) unless `--take-over` is given.
//! Every flush carries the claim's epoch and renews the lease; a flush of an instance whose
//! claim was taken over is refused by the backend (fenced) and that instance stops reading.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authstat_core::NodeId;
use authstat_core::hash::murmur3_x64_128;
use authstat_core::store::{
    ClaimRequest, Instance, Lease, NodeClaim, StatStore, StoreError, TakeOver,
};
use tracing::{info, warn};

/// Milliseconds since the Unix epoch, by the wall clock (leases are compared across hosts).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The host name (Linux), or `unknown`.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(name.trim().to_owned()).filter(|n| !n.is_empty())
}

/// This process, as the holder of a lease.
pub fn this_instance() -> Instance {
    let host = host_name().unwrap_or_else(|| "unknown".into());
    let pid = std::process::id();
    let started_at_ms = now_ms();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Unique enough to tell two processes apart (not a secret).
    let stack_marker = 0u8;
    let seed = format!("{host}/{pid}/{nanos}/{:p}", &stack_marker);
    let (a, b) = murmur3_x64_128(seed.as_bytes(), 0x5eed);
    Instance {
        id: format!("{a:016x}{b:016x}"),
        host,
        pid,
        started_at_ms,
        locality: locality(),
    }
}

/// The kernel's boot id and this process's pid namespace: where a pid identifies a process.
fn locality() -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let pid_ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if boot.trim().is_empty() || pid_ns.is_empty() {
        return String::new();
    }
    format!("{}/{pid_ns}", boot.trim())
}

/// Whether `holder` provably no longer runs: it ran in this boot and pid namespace, and its
/// pid is ours or no process has it. (A reused pid makes this say "may run": the safe side.)
fn provably_gone(holder: &Instance, me: &Instance) -> bool {
    if holder.locality.is_empty() || holder.locality != me.locality || holder.host != me.host {
        return false;
    }
    holder.pid == me.pid || !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
}

/// The node id is this process's: every flush is made under `epoch`.
#[derive(Debug, Clone)]
pub struct Ownership {
    /// The node.
    pub node: NodeId,
    /// This process.
    pub instance: Instance,
    /// The claim's epoch.
    pub epoch: u64,
    /// How long a claim lasts without a flush.
    pub lease: Duration,
}

impl Ownership {
    /// Until when a flush made now renews the lease.
    pub fn lease_until_ms(&self) -> i64 {
        now_ms().saturating_add(self.lease.as_millis() as i64)
    }
}

/// Another instance holds a live claim on the node id.
#[derive(Debug, thiserror::Error)]
#[error(
    "node id {node} is in use by another agent: {holder} holds it until {until} ms since the \
     epoch ({remaining} s from now); this is {me}. Give every agent its own node_id (the host \
     name by default). If that agent is gone (it crashed), start this one with --take-over, or \
     wait for its lease to expire"
)]
pub struct ClaimRefused {
    node: NodeId,
    holder: String,
    until: i64,
    remaining: i64,
    me: Instance,
}

/// Why claiming failed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another agent runs with this node id.
    #[error(transparent)]
    Refused(#[from] ClaimRefused),
    /// The backend did not answer.
    #[error("claiming node id {node}: {source}")]
    Store {
        /// The node.
        node: NodeId,
        /// The backend's error.
        source: StoreError,
    },
}

/// Claims `node` for this process.
pub async fn claim(
    store: &dyn StatStore,
    node: &NodeId,
    lease: Duration,
    take_over: bool,
) -> Result<Ownership, ClaimError> {
    claim_as(store, node, lease, take_over, &this_instance()).await
}

/// Claims `node` as `instance`. Claiming again as the same instance is granted (the answer to
/// an earlier attempt may have been lost).
pub async fn claim_as(
    store: &dyn StatStore,
    node: &NodeId,
    lease: Duration,
    take_over: bool,
    instance: &Instance,
) -> Result<Ownership, ClaimError> {
    let instance = instance.clone();
    let now = now_ms();
    let mut request = ClaimRequest {
        node: node.clone(),
        instance: instance.clone(),
        until_ms: now.saturating_add(lease.as_millis() as i64),
        now_ms: now,
        take_over: if take_over {
            TakeOver::Always
        } else {
            TakeOver::Never
        },
    };
    let store_error = |source| ClaimError::Store {
        node: node.clone(),
        source,
    };
    let mut answer = store.claim_node(&request).await.map_err(store_error)?;
    // The holder crashed here (same host, same pid namespace, its process is gone): a restart
    // after a crash needs nobody to pass --take-over.
    if let NodeClaim::Refused { holder } = &answer
        && let Some(previous) = &holder.holder
        && provably_gone(previous, &instance)
    {
        warn!(%node, previous = %previous, "the node's previous agent is not running any more (it crashed): taking the node over");
        request.take_over = TakeOver::IfEpoch(holder.epoch);
        answer = store.claim_node(&request).await.map_err(store_error)?;
    }
    match answer {
        NodeClaim::Granted { epoch, previous } => {
            log_grant(node, &instance, epoch, previous.as_ref(), now);
            Ok(Ownership {
                node: node.clone(),
                instance,
                epoch,
                lease,
            })
        }
        NodeClaim::Refused { holder } => Err(ClaimRefused {
            node: node.clone(),
            holder: describe(&holder),
            until: holder.until_ms,
            remaining: (holder.until_ms - now).max(0) / 1000,
            me: instance,
        }
        .into()),
    }
}

fn describe(lease: &Lease) -> String {
    match &lease.holder {
        Some(h) => h.to_string(),
        None => "an unknown instance".into(),
    }
}

fn log_grant(node: &NodeId, me: &Instance, epoch: u64, previous: Option<&Lease>, now: i64) {
    let mine = |p: &Lease| p.holder.as_ref().is_some_and(|h| h.id == me.id);
    match previous {
        // A retried claim whose first answer was lost.
        Some(p) if mine(p) => info!(%node, epoch, instance = %me.id, "node id claimed"),
        Some(p) if p.is_live(now) => warn!(
            %node, epoch, instance = %me.id, previous = %describe(p),
            "took the node id over from a live claim (--take-over): that agent's flushes are refused from now on"
        ),
        Some(p) if !p.released => warn!(
            %node, epoch, instance = %me.id, previous = %describe(p),
            "took the node id over from an expired claim (that agent stopped without releasing it)"
        ),
        _ => info!(%node, epoch, instance = %me.id, "node id claimed"),
    }
}
