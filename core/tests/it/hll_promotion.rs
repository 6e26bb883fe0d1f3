//! Promotion EMPTY → EXPLICIT → SPARSE → FULL exactly at java-hll's thresholds.

use authstat_core::hll::{ExplicitThreshold, Hll, HllParams, HllType};

use crate::support::{hll_of, param_sets, raw_for};

#[test]
fn janssen_explicit_promotes_at_2561_values() {
    let p = HllParams::janssen();
    let values: Vec<i64> = (0..2561).map(|j| raw_for(&p, j, 1)).collect();
    let mut h = hll_of(p, values[..2560].iter().copied());
    assert_eq!(h.hll_type(), HllType::Explicit);
    assert_eq!(h.cardinality(), Some(2560));
    // A duplicate does not promote.
    h.add_raw(values[0]);
    assert_eq!(h.hll_type(), HllType::Explicit);
    h.add_raw(values[2560]);
    assert_eq!(h.hll_type(), HllType::Sparse);
    assert_eq!(h.nonzero_registers(), Some(2561));
}

#[test]
fn janssen_sparse_promotes_at_8193_registers() {
    let p = HllParams::janssen();
    let mut h = hll_of(p, (0..8192).map(|j| raw_for(&p, j, 2)));
    assert_eq!(h.hll_type(), HllType::Sparse);
    assert_eq!(h.nonzero_registers(), Some(8192));
    // SPARSE body: 8192 words of 15 + 5 bits.
    assert_eq!(h.to_bytes().unwrap().len(), 3 + 8192 * 20 / 8);
    // A higher value in a register already set does not add a register.
    h.add_raw(raw_for(&p, 17, 9));
    assert_eq!(h.hll_type(), HllType::Sparse);
    h.add_raw(raw_for(&p, 8192, 1));
    assert_eq!(h.hll_type(), HllType::Full);
    let regs = h.registers().unwrap();
    assert_eq!(regs[17], 9);
    assert_eq!(regs[8192], 1);
    assert_eq!(regs.iter().filter(|&&r| r != 0).count(), 8193);
    assert_eq!(h.to_bytes().unwrap().len(), 20483);
}

/// The representation after each add of a value hitting a new register, for every parameter set:
/// EXPLICIT while ≤ T values; the promotion from EXPLICIT replays without a check (java-hll), so
/// the first probabilistic state is SPARSE; then SPARSE while ≤ S registers; FULL after.
#[test]
fn promotion_follows_the_thresholds_for_every_parameter_set() {
    for p in param_sets() {
        let t = p.explicit_threshold() as u64;
        let s = p.sparse_threshold() as u64;
        let limit = (p.m() as u64).min(t.max(s) + 3);
        let mut h = Hll::new(p);
        for k in 1..=limit {
            h.add_raw(raw_for(&p, k - 1, 1));
            let first_probabilistic = k == t + 1;
            let expected = if k <= t {
                HllType::Explicit
            } else if p.sparse() && (first_probabilistic || k <= s) {
                HllType::Sparse
            } else {
                HllType::Full
            };
            assert_eq!(h.hll_type(), expected, "{p:?} after {k} values");
        }
    }
}

#[test]
fn explicit_keeps_raw_values_that_probabilistic_storage_ignores() {
    let p = HllParams::janssen();
    let mut h = Hll::new(p);
    h.add_raw(0);
    h.add_raw(5); // w == 0 as well
    assert_eq!(h.explicit_values(), Some(&[0i64, 5][..]));
    assert_eq!(h.cardinality(), Some(2));
    let mut full = Hll::new(
        p.with_explicit(ExplicitThreshold::Off)
            .unwrap()
            .with_sparse(false),
    );
    full.add_raw(0);
    assert_eq!(full.hll_type(), HllType::Full);
    assert_eq!(full.nonzero_registers(), Some(0));
    let mut sparse = Hll::new(p.with_explicit(ExplicitThreshold::Off).unwrap());
    sparse.add_raw(5);
    assert_eq!(sparse.hll_type(), HllType::Sparse);
    assert_eq!(
        sparse.nonzero_registers(),
        Some(0),
        "a zero never enters the sparse map"
    );
}

#[test]
fn register_values_are_capped_at_the_register_width() {
    for (regwidth, cap) in [(1u8, 1u8), (2, 3), (3, 7), (4, 15), (5, 31)] {
        let p = HllParams::new(10, regwidth)
            .unwrap()
            .with_sparse(false)
            .with_explicit(ExplicitThreshold::Off)
            .unwrap();
        let mut h = Hll::new(p);
        h.add_raw(i64::MIN); // w = 1 << 53: 53 trailing zeros
        assert_eq!(h.registers().unwrap()[0], cap, "regwidth {regwidth}");
    }
    // Wider registers are capped by java-hll's mask at 63 and by the bits of w at 64 - log2m.
    let p = HllParams::new(10, 8)
        .unwrap()
        .with_sparse(false)
        .with_explicit(ExplicitThreshold::Off)
        .unwrap();
    let mut h = Hll::new(p);
    h.add_raw(i64::MIN);
    assert_eq!(h.registers().unwrap()[0], 54);
}

#[test]
fn a_fixed_sparse_threshold_applies_when_reading_bytes() {
    let p = HllParams::new(12, 5)
        .unwrap()
        .with_explicit(ExplicitThreshold::Off)
        .unwrap();
    let h = hll_of(p, (0..100).map(|j| raw_for(&p, j, 1)));
    assert_eq!(
        h.hll_type(),
        HllType::Sparse,
        "java-hll's threshold for (12,5) is {}",
        p.sparse_threshold()
    );
    let bytes = h.to_bytes().unwrap();

    let mut fixed = Hll::from_bytes_with_max_sparse(&bytes, Some(50)).unwrap();
    assert_eq!(fixed.hll_type(), HllType::Sparse, "reading never promotes");
    assert_eq!(fixed.params().sparse_threshold(), 50);
    fixed.add_raw(raw_for(&p, 3, 2));
    assert_eq!(
        fixed.hll_type(),
        HllType::Full,
        "100 registers > 50 at the next add"
    );

    let mut auto = Hll::from_bytes(&bytes).unwrap();
    auto.add_raw(raw_for(&p, 3, 2));
    assert_eq!(auto.hll_type(), HllType::Sparse);
    assert_eq!(auto.registers(), fixed.registers());
}

#[test]
fn undefined_is_read_and_propagated_but_never_written() {
    let bytes = [0x10, 0x8f, 0x7f];
    let mut u = Hll::from_bytes(&bytes).unwrap();
    assert_eq!(u.hll_type(), HllType::Undefined);
    assert_eq!(u.cardinality(), None);
    assert_eq!(u.estimate(), None);
    assert_eq!(u.registers(), None);
    u.add_raw(12345);
    assert_eq!(u.hll_type(), HllType::Undefined);
    let err = u.to_bytes().unwrap_err().to_string();
    assert!(err.contains("undefined"), "{err}");
}

/// An HLL built without SPARSE (adding to FULL registers is cheaper) and given the SPARSE
/// parameters afterwards is, value for value and byte for byte, the one built with them, at
/// every count around both thresholds and for several parameter sets.
#[test]
fn built_without_sparse_then_given_sparse_params_equals_built_with_them() {
    use authstat_core::hash::HashAlgorithm;
    for (log2m, regwidth) in [(11u8, 5u8), (13, 5), (15, 5), (8, 4)] {
        let p = HllParams::new(log2m, regwidth).unwrap();
        let dense = p.with_sparse(false);
        let (explicit, sparse) = (
            p.explicit_threshold() as usize,
            p.sparse_threshold() as usize,
        );
        for n in [
            0,
            1,
            explicit,
            explicit + 1,
            sparse,
            sparse + 1,
            2 * sparse,
            4 * sparse + 7,
        ] {
            let mut canonical = Hll::new(p);
            let mut fast = Hll::new(dense);
            for i in 0..n {
                let raw = HashAlgorithm::Murmur3.hash(&format!("u{i}"));
                canonical.add_raw(raw);
                fast.add_raw(raw);
            }
            let converted = fast.with_params(p).unwrap();
            assert_eq!(converted, canonical, "log2m {log2m}, {n} values");
            assert_eq!(converted.to_bytes().unwrap(), canonical.to_bytes().unwrap());
        }
    }
    let other = HllParams::new(12, 5).unwrap();
    assert!(Hll::new(HllParams::janssen()).with_params(other).is_err());
}
