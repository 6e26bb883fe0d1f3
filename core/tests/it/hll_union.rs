//! Union between every pair of representations, for every parameter set.

use authstat_core::hll::{Hll, HllParams, HllType};

use crate::support::{param_sets, raw_for};

/// An HLL of `target` type built with add_raw, and the inputs that built it; `None` where the
/// parameters never reach that type.
fn build(p: &HllParams, target: HllType, seed: u64) -> Option<(Hll, Vec<i64>)> {
    let mut h = Hll::new(*p);
    let mut inputs = Vec::new();
    let m = p.m() as u64;
    let max_p = u64::from(p.max_register()).min(64 - u64::from(p.log2m()));
    let order = |t: HllType| {
        [
            HllType::Empty,
            HllType::Explicit,
            HllType::Sparse,
            HllType::Full,
        ]
        .iter()
        .position(|&x| x == t)
    };
    for k in 0..(4 * m + u64::from(p.explicit_threshold()) + 10) {
        if h.hll_type() == target {
            return Some((h, inputs));
        }
        if order(h.hll_type()) > order(target) {
            return None;
        }
        let raw = raw_for(p, (seed * 7 + k * 3) % m, (1 + (k + seed) % max_p) as u32);
        h.add_raw(raw);
        inputs.push(raw);
    }
    (h.hll_type() == target).then_some((h, inputs))
}

fn max_registers(a: &Hll, b: &Hll) -> Vec<u8> {
    let (a, b) = (a.registers().unwrap(), b.registers().unwrap());
    a.iter().zip(&b).map(|(x, y)| *x.max(y)).collect()
}

#[test]
fn union_of_every_pair_of_representations() {
    let types = [
        HllType::Empty,
        HllType::Explicit,
        HllType::Sparse,
        HllType::Full,
    ];
    let mut pairs = 0;
    for p in param_sets() {
        for &ta in &types {
            for &tb in &types {
                let (Some((a, a_in)), Some((b, b_in))) = (build(&p, ta, 1), build(&p, tb, 5))
                else {
                    continue;
                };
                let mut u = a.clone();
                u.union(&b).unwrap();
                let ctx = format!("{p:?}: {ta} ∪ {tb} = {}", u.hll_type());
                assert_eq!(u.registers().unwrap(), max_registers(&a, &b), "{ctx}");
                if ta == HllType::Full || tb == HllType::Full {
                    assert_eq!(u.hll_type(), HllType::Full, "{ctx}");
                }
                if ta == HllType::Empty {
                    assert_eq!(u, b, "EMPTY ∪ X is a copy of X: {ctx}");
                }
                if tb == HllType::Empty {
                    assert_eq!(u, a, "X ∪ EMPTY is X: {ctx}");
                }
                // The same as adding both inputs to one HLL.
                let mut combined = Hll::new(p);
                for &raw in a_in.iter().chain(&b_in) {
                    combined.add_raw(raw);
                }
                assert_eq!(u.registers(), combined.registers(), "{ctx}");
                assert_eq!(u.cardinality(), combined.cardinality(), "{ctx}");
                // Serialized round trip of the result.
                let back = Hll::from_bytes_with_max_sparse(&u.to_bytes().unwrap(), p.max_sparse())
                    .unwrap();
                assert_eq!(back, u, "{ctx}");
                pairs += 1;
            }
        }
    }
    assert!(pairs > 80, "only {pairs} pairs built");
}

#[test]
fn union_with_undefined_is_undefined_both_ways() {
    let p = HllParams::janssen();
    let undefined = Hll::from_bytes(&[0x10, 0x8f, 0x7f]).unwrap();
    for t in [
        HllType::Empty,
        HllType::Explicit,
        HllType::Sparse,
        HllType::Full,
    ] {
        let (h, _) = build(&p, t, 3).unwrap();
        let mut left = h.clone();
        left.union(&undefined).unwrap();
        assert_eq!(left.hll_type(), HllType::Undefined, "{t} ∪ UNDEFINED");
        let mut right = undefined.clone();
        right.union(&h).unwrap();
        assert_eq!(right.hll_type(), HllType::Undefined, "UNDEFINED ∪ {t}");
    }
}

#[test]
fn union_refuses_other_log2m_or_regwidth_and_leaves_the_receiver_alone() {
    let p = HllParams::janssen();
    let (a, _) = build(&p, HllType::Explicit, 1).unwrap();
    for other in [
        HllParams::new(14, 5).unwrap(),
        HllParams::new(15, 6).unwrap(),
    ] {
        let (b, _) = build(&other, HllType::Explicit, 2).unwrap();
        let mut u = a.clone();
        let err = u.union(&b).unwrap_err().to_string();
        assert!(err.contains("log2m 15 regwidth 5"), "{err}");
        assert_eq!(u, a);
    }
    // Other thresholds are fine: the receiver's decide.
    let sparse_off = p.with_sparse(false);
    let (b, _) = build(&sparse_off, HllType::Full, 2).unwrap();
    let mut u = a.clone();
    u.union(&b).unwrap();
    assert_eq!(u.hll_type(), HllType::Full);
}
