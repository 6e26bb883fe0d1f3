//! What every backend must do about ownership: node leases, fencing and key claims.

use std::sync::Arc;

use authstat_core::counters::Counters;
use authstat_core::store::{FlushOutcome, KeyClaim, KeyOwner, NodeClaim, StatStore, StoreError};

use crate::support::*;

pub async fn one_instance_owns_a_node(h: &dyn Harness) {
    let store = h.open().await.store;
    let now = now_ms();
    let first = store
        .claim_node(&claim_request("node-a", "first", now, 60_000))
        .await
        .unwrap();
    assert!(
        matches!(
            first,
            NodeClaim::Granted {
                epoch: 1,
                previous: None
            }
        ),
        "{first:?}"
    );
    store
        .flush(&batch("node-a", 1, &["202402"], 0, 10, 1))
        .await
        .unwrap();

    // A second instance is refused while the lease is live, and nothing changes.
    let second = store
        .claim_node(&claim_request("node-a", "second", now + 1000, 60_000))
        .await
        .unwrap();
    let NodeClaim::Refused { holder } = second else {
        panic!("{second:?}")
    };
    assert_eq!(holder.holder.unwrap().id, "first");
    assert_eq!(holder.epoch, 1);
    assert!(
        holder.until_ms >= now + 60_000,
        "the flush renewed the lease"
    );
    // The same instance claiming again (a restart of itself) is granted.
    let again = store
        .claim_node(&claim_request("node-a", "first", now + 1000, 60_000))
        .await
        .unwrap();
    assert!(
        matches!(again, NodeClaim::Granted { epoch: 2, .. }),
        "{again:?}"
    );
    // A take-over on condition of an epoch that is no longer the current one is refused.
    let mut stale = claim_request("node-a", "second", now + 1500, 60_000);
    stale.take_over = authstat_core::store::TakeOver::IfEpoch(1);
    assert!(matches!(
        store.claim_node(&stale).await.unwrap(),
        NodeClaim::Refused { .. }
    ));

    // Taken over: the old instance's flushes are fenced, loudly, and change nothing.
    let mut take = claim_request("node-a", "second", now + 2000, 60_000);
    take.take_over = authstat_core::store::TakeOver::Always;
    let taken = store.claim_node(&take).await.unwrap();
    let NodeClaim::Granted { epoch: 3, previous } = taken else {
        panic!("{taken:?}")
    };
    assert_eq!(previous.unwrap().holder.unwrap().id, "first");
    let before = store.read_months(&[month("202402")]).await.unwrap();
    let mut stale = batch("node-a", 2, &["202402"], 0, 10, 5);
    stale.epoch = 2;
    let err = store.flush(&stale).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
    let StoreError::Fenced { holder, .. } = &err else {
        panic!("{err}")
    };
    assert!(holder.contains("second"), "{err}");
    assert_eq!(store.read_months(&[month("202402")]).await.unwrap(), before);
    // The new owner continues from the stored state.
    let state = store.load_node(&node("node-a")).await.unwrap();
    let mut next = batch("node-a", state.seq + 1, &["202402"], 0, 10, 1);
    next.epoch = 3;
    assert_eq!(store.flush(&next).await.unwrap(), FlushOutcome::Applied);
    let mut expected = counters(1);
    expected.merge(&counters(1));
    let read = store.read_months(&[month("202402")]).await.unwrap();
    assert_eq!(read[0].counters, expected);
    // A node nobody claimed cannot be written.
    let err = store
        .flush(&batch("never-claimed", 1, &["202402"], 0, 1, 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
}

pub async fn expired_and_released_leases_are_taken_over(h: &dyn Harness) {
    let store = h.open().await.store;
    let now = now_ms();
    let short = claim_request("node-a", "first", now, 1000);
    assert!(matches!(
        store.claim_node(&short).await.unwrap(),
        NodeClaim::Granted { epoch: 1, .. }
    ));
    // Still live a moment later, expired after its end.
    assert!(matches!(
        store
            .claim_node(&claim_request("node-a", "second", now + 999, 60_000))
            .await
            .unwrap(),
        NodeClaim::Refused { .. }
    ));
    let later = store
        .claim_node(&claim_request("node-a", "second", now + 1001, 60_000))
        .await
        .unwrap();
    let NodeClaim::Granted { epoch: 2, previous } = later else {
        panic!("{later:?}")
    };
    assert!(!previous.unwrap().is_live(now + 1001));
    // Released at a clean stop: the next one needs no waiting.
    store.release_node(&node("node-a"), 1).await.unwrap();
    let lease = store.lease(&node("node-a")).await.unwrap().unwrap();
    assert!(!lease.released, "a release by an old epoch does nothing");
    store.release_node(&node("node-a"), 2).await.unwrap();
    let lease = store.lease(&node("node-a")).await.unwrap().unwrap();
    assert!(lease.released && lease.epoch == 2, "{lease:?}");
    assert!(matches!(
        store
            .claim_node(&claim_request("node-a", "third", now + 2000, 60_000))
            .await
            .unwrap(),
        NodeClaim::Granted { epoch: 3, .. }
    ));
    assert!(store.lease(&node("no-such-node")).await.unwrap().is_none());
}

/// Two instances with one node id, both flushing; the second takes the node over half-way.
/// Every flush either counts or is refused, and the stored counters are exactly the sum of
/// the applied ones.
pub async fn two_instances_of_one_node_flushing_at_once(h: &dyn Harness) {
    let store: Arc<dyn StatStore> = h.open().await.store;
    own(store.as_ref(), "node-a").await;
    let flusher = |store: Arc<dyn StatStore>, epoch: u64, first_seq: u64, k: u64| {
        tokio::spawn(async move {
            let mut applied = 0u64;
            for seq in first_seq..first_seq + 40 {
                let mut b = batch("node-a", seq, &["202402"], 0, 5, k);
                b.epoch = epoch;
                match store.flush(&b).await {
                    Ok(FlushOutcome::Applied) => applied += 1,
                    Ok(other) => panic!("{other:?}"),
                    Err(StoreError::Fenced { .. }) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            applied
        })
    };
    let old = flusher(store.clone(), 1, 1, 1);
    tokio::task::yield_now().await;
    let mut take = claim_request("node-a", "replacement", now_ms(), 60_000);
    take.take_over = authstat_core::store::TakeOver::Always;
    let NodeClaim::Granted { epoch, .. } = store.claim_node(&take).await.unwrap() else {
        panic!("take over refused")
    };
    let seq = store.load_node(&node("node-a")).await.unwrap().seq;
    let new = flusher(store.clone(), epoch, seq + 1, 1000);
    let (old, new) = (old.await.unwrap(), new.await.unwrap());
    assert_eq!(new, 40, "the owner is never refused");
    let mut expected = Counters::default();
    for _ in 0..old {
        expected.merge(&counters(1));
    }
    for _ in 0..new {
        expected.merge(&counters(1000));
    }
    let read = store.read_months(&[month("202402")]).await.unwrap();
    assert_eq!(read[0].counters, expected, "{old} old flushes applied");
}

pub async fn keys_are_claimed_once_cluster_wide(h: &dyn Harness) {
    let store = h.open().await.store;
    let owner = |n: &str, source: &str, epoch: u64| KeyOwner {
        node: node(n),
        source: source.into(),
        epoch,
    };
    let keys: Vec<String> = (0..3).map(|i| format!("file:{i}:256")).collect();
    let a = owner("node-a", "backfill", 1);
    let answers = store.claim_keys(&a, &keys).await.unwrap();
    assert_eq!(answers, vec![KeyClaim::Ours; 3]);
    // Another node, and another source of the same node: theirs.
    let b = owner("node-b", "audit", 7);
    let mut asked = vec![keys[1].clone(), "file:new:256".into()];
    assert_eq!(
        store.claim_keys(&b, &asked).await.unwrap(),
        vec![KeyClaim::Theirs(a.clone()), KeyClaim::Ours]
    );
    assert_eq!(
        store
            .claim_keys(&owner("node-a", "audit", 1), &keys[..1])
            .await
            .unwrap(),
        vec![KeyClaim::Theirs(a.clone())]
    );
    // Claimed again under a new epoch: confirmed, and the epoch moves.
    let a2 = owner("node-a", "backfill", 2);
    assert_eq!(
        store.claim_keys(&a2, &keys).await.unwrap(),
        vec![KeyClaim::Ours; 3]
    );
    // Moving a claim is a compare-and-set on the owner's epoch.
    assert!(
        !store.take_over_key(&keys[1], &a, &b).await.unwrap(),
        "stale epoch"
    );
    assert!(store.take_over_key(&keys[1], &a2, &b).await.unwrap());
    assert!(
        !store.take_over_key(&keys[1], &a2, &b).await.unwrap(),
        "moved already"
    );
    asked.truncate(1);
    assert_eq!(
        store.claim_keys(&b, &asked).await.unwrap(),
        vec![KeyClaim::Ours]
    );
    assert_eq!(
        store.claim_keys(&a2, &asked).await.unwrap(),
        vec![KeyClaim::Theirs(b.clone())]
    );
    // Many keys at once (SQL: more than one statement).
    let many: Vec<String> = (0..1200).map(|i| format!("file:many{i}:256")).collect();
    let answers = store.claim_keys(&a2, &many).await.unwrap();
    assert!(answers.iter().all(|a| *a == KeyClaim::Ours));
    assert!(
        store
            .claim_keys(&b, &many)
            .await
            .unwrap()
            .iter()
            .all(|x| *x == KeyClaim::Theirs(a2.clone()))
    );
}

pub async fn data_version_and_nodes(h: &dyn Harness) {
    let store = h.open().await.store;
    let v0 = store.data_version().await.unwrap();
    own(store.as_ref(), "node-b").await;
    own(store.as_ref(), "node-a").await;
    store
        .flush(&batch("node-a", 1, &["202402"], 0, 1, 1))
        .await
        .unwrap();
    let v1 = store.data_version().await.unwrap();
    assert_ne!(v0, v1, "a flush changes the data version");
    let retried = store
        .flush(&batch("node-a", 1, &["202402"], 0, 1, 1))
        .await
        .unwrap();
    assert_eq!(retried, FlushOutcome::AlreadyApplied);
    assert_eq!(store.data_version().await.unwrap(), v1, "nothing changed");
    let nodes = store.nodes().await.unwrap();
    let ids: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    assert_eq!(nodes[0].seq, 1);
    assert!(
        nodes[0].updated_at_ms >= now_ms() - 60_000,
        "{:?}",
        nodes[0]
    );
    assert_eq!(nodes[1].seq, 0);
    let lease = nodes[0].lease.as_ref().unwrap();
    assert_eq!(lease.holder.as_ref().unwrap().id, "node-a-instance");
}
