//! Claims of new files: one reader per file content, cluster-wide.
//!
//! Before a new stream (a file content never read by this node) is read, its key is claimed in
//! the backend. What then happens depends on who else has it:
//!
//! | claimed by | the agent | `authstat backfill` |
//! |---|---|---|
//! | nobody (or this source) | reads it | reads it |
//! | another source of this node | refuses it: two sources match the same file | refuses it |
//! | a source of this node that is no longer configured (renamed) | takes it over at that source's stored position | refuses it |
//! | `authstat backfill`, still running | waits, asks again at each scan | refuses it |
//! | `authstat backfill`, finished | takes the claim over and continues at the backfill's position | refuses it |
//! | another node's agent | reads it: another host's file with the same first bytes | refuses it |
//!
//! A backfill whose lease expired without being released (it crashed or hangs) is fenced
//! first: its node is claimed and released again, so that a late flush of it is refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use authstat_config::BACKFILL_SOURCE;
use authstat_core::NodeId;
use authstat_core::source::{Settled, Source};
use authstat_core::store::{
    ClaimRequest, KeyClaim, KeyOwner, NodeClaim, SourcePosition, StatStore, StoreError,
};
use tracing::{info, warn};

use crate::own::Ownership;
use authstat_core::month::now_ms;

/// Who reads: a following agent, or `backfill` (which never shares a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The agent.
    Agent,
    /// `authstat backfill`.
    Backfill,
}

/// A file that backfill refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The files holding the content.
    pub paths: Vec<String>,
    /// Why.
    pub why: String,
}

/// Settles the claims of new streams of `tailers`.
pub(super) struct Claims {
    pub role: Role,
    pub store: Arc<dyn StatStore>,
    pub owner: Ownership,
    pub runtime: tokio::runtime::Handle,
    /// Keys we already warned about (waiting for a backfill).
    pub warned: BTreeSet<String>,
    /// The node's positions as stored (a renamed source's are found here).
    pub stored: Vec<authstat_core::store::SourcePosition>,
    pub refusals: Vec<Refusal>,
}

impl Claims {
    /// Claims what the sources wait for; returns how many inputs still wait.
    pub fn settle(&mut self, sources: &mut [Box<dyn Source>]) -> u64 {
        let configured: Vec<String> = sources.iter().map(|s| s.name().to_owned()).collect();
        let mut waiting = 0;
        for t in sources.iter_mut() {
            let regrown = t.take_regrown();
            let keys = t.unclaimed();
            if keys.is_empty() && regrown.is_empty() {
                continue;
            }
            let owner = self.key_owner(t.name());
            let runtime = self.runtime.clone();
            if !regrown.is_empty() {
                // A stream first claimed short: claim its longer key too (nothing waits for it).
                if let Err(e) = runtime.block_on(self.store.claim_keys(&owner, &regrown)) {
                    warn!(source = t.name(), error = %e, "claiming files failed");
                }
            }
            if keys.is_empty() {
                continue;
            }
            let answers = match runtime.block_on(self.store.claim_keys(&owner, &keys)) {
                Ok(answers) => answers,
                Err(e) => {
                    warn!(source = t.name(), error = %e, "claiming new files failed; trying again at the next scan");
                    waiting += keys.len() as u64;
                    continue;
                }
            };
            for (key, answer) in keys.iter().zip(answers) {
                let (decision, why) = match answer {
                    KeyClaim::Ours => (Settled::Read, String::new()),
                    KeyClaim::Theirs(other) => self.decide(&owner, key, &other, &configured),
                };
                if decision == Settled::Wait {
                    waiting += 1;
                }
                let refused = decision == Settled::Refuse;
                let paths = t.settle(key, decision);
                if refused {
                    self.refused(paths, why);
                }
            }
        }
        waiting
    }

    fn key_owner(&self, source: &str) -> KeyOwner {
        KeyOwner {
            node: self.owner.node.clone(),
            source: source.to_owned(),
            epoch: self.owner.epoch,
        }
    }

    fn decide(
        &mut self,
        me: &KeyOwner,
        key: &str,
        other: &KeyOwner,
        configured: &[String],
    ) -> (Settled, String) {
        let why = if other.node == me.node {
            format!("source '{}' of this node reads the same file", other.source)
        } else {
            format!(
                "node {} (source '{}') read the same content first",
                other.node, other.source
            )
        };
        let decision = match self.role {
            Role::Backfill => Settled::Refuse,
            // A source of this node that was renamed: its stored position is this source's now.
            Role::Agent if other.node == me.node && !configured.contains(&other.source) => {
                match self
                    .runtime
                    .block_on(self.store.take_over_key(key, other, me))
                {
                    Ok(true) => {
                        let position = self
                            .stored
                            .iter()
                            .find(|p| p.source == other.source && p.key == key)
                            .cloned();
                        info!(from = %other.source, to = %me.source, "a renamed source continues where it stood");
                        position.map_or(Settled::Read, Settled::ContinueFrom)
                    }
                    _ => Settled::Wait,
                }
            }
            Role::Agent if other.node == me.node => Settled::Refuse,
            Role::Agent if other.source == BACKFILL_SOURCE => {
                match self.take_over(me, key, other) {
                    Ok(Some(position)) => position.map_or(Settled::Read, Settled::ContinueFrom),
                    Ok(None) => {
                        if self.warned.insert(key.to_owned()) {
                            warn!(node = %other.node, "a file is being read by `authstat backfill`; it is read here when the backfill ends");
                        }
                        Settled::Wait
                    }
                    Err(e) => {
                        warn!(error = %e, "taking a file over from a finished backfill failed; trying again later");
                        Settled::Wait
                    }
                }
            }
            // Another host's file that starts with the same bytes: each node counts its own.
            Role::Agent => Settled::Read,
        };
        (decision, why)
    }

    /// Takes `key` over from a backfill that is no longer running: its stored position (if it
    /// stored one), or `None` while it runs (or when the claim changed meanwhile).
    fn take_over(
        &self,
        me: &KeyOwner,
        key: &str,
        other: &KeyOwner,
    ) -> Result<Option<Option<SourcePosition>>, StoreError> {
        let rt = &self.runtime;
        let lease = rt.block_on(self.store.lease(&other.node))?;
        let now = now_ms();
        if let Some(lease) = &lease {
            if lease.is_live(now) {
                return Ok(None);
            }
            if !lease.released {
                // It stopped without releasing (crashed or hangs): fence it, so that a late
                // flush of it cannot count what we read from here on.
                fence(rt, &self.store, &other.node, &self.owner)?;
            }
        }
        if !rt.block_on(self.store.take_over_key(key, other, me))? {
            return Ok(None);
        }
        let state = rt.block_on(self.store.load_node(&other.node))?;
        let position = state
            .positions
            .into_iter()
            .find(|p| p.source == other.source && p.key == key);
        info!(node = %other.node, "continuing a file where `authstat backfill` stopped");
        Ok(Some(position))
    }

    fn refused(&mut self, paths: Vec<String>, why: String) {
        warn!(files = ?paths, %why, "not read here: counted once, elsewhere");
        self.refusals.push(Refusal { paths, why });
    }
}

/// Claims and releases `node` (a backfill that stopped without releasing): its flushes are
/// refused from now on.
fn fence(
    rt: &tokio::runtime::Handle,
    store: &Arc<dyn StatStore>,
    node: &NodeId,
    me: &Ownership,
) -> Result<(), StoreError> {
    let now = now_ms();
    let request = ClaimRequest {
        node: node.clone(),
        instance: me.instance.clone(),
        until_ms: now + Duration::from_secs(1).as_millis() as i64,
        now_ms: now,
        take_over: authstat_core::store::TakeOver::Never,
    };
    if let NodeClaim::Granted { epoch, .. } = rt.block_on(store.claim_node(&request))? {
        rt.block_on(store.release_node(node, epoch))?;
    }
    Ok(())
}
