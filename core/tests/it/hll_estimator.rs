//! The estimator, bit for bit, against a plain transcription of java-hll's formula
//! (janssen-compat.md section 6), over register states that reach all three of its branches.

use authstat_core::hll::{ExplicitThreshold, Hll, HllParams};
use proptest::prelude::*;

use crate::support::{param_sets, raw_for};

#[derive(Debug, Default)]
struct Branches {
    small: u32,
    raw: u32,
    large: u32,
}

/// java-hll's `fullProbabilisticAlgorithmCardinality`, written the naive way: index order.
#[allow(
    clippy::neg_multiply,
    reason = "a transcription of java-hll's `-1 * twoToL * ...`"
)]
fn reference(p: &HllParams, registers: &[u8], branches: &mut Branches) -> f64 {
    let m = p.m() as f64;
    let mut sum = 0.0;
    let mut zeros = 0;
    for &r in registers {
        sum += 1.0 / (1i64.wrapping_shl(u32::from(r)) as f64);
        if r == 0 {
            zeros += 1;
        }
    }
    let alpha_mm = match p.m() {
        16 => 0.673 * m * m,
        32 => 0.697 * m * m,
        64 => 0.709 * m * m,
        _ => (0.7213 / (1.0 + 1.079 / m)) * m * m,
    };
    let e = alpha_mm / sum;
    let two_to_l = 2f64.powi(i32::from(p.log2m()) + (1 << p.regwidth()) - 2);
    if zeros != 0 && e < (m * 5.0) / 2.0 {
        branches.small += 1;
        m * (m / zeros as f64).ln()
    } else if e <= two_to_l / 30.0 {
        branches.raw += 1;
        e
    } else {
        branches.large += 1;
        -1.0 * two_to_l * (1.0 - e / two_to_l).ln()
    }
}

/// A FULL HLL holding exactly `registers`, and the same registers as SPARSE where possible.
fn hlls_with(p: HllParams, registers: &[u8]) -> Vec<Hll> {
    let full_params = p
        .with_explicit(ExplicitThreshold::Off)
        .unwrap()
        .with_sparse(false);
    let sparse_params = p
        .with_explicit(ExplicitThreshold::Off)
        .unwrap()
        .with_sparse(true)
        .with_max_sparse(Some(u32::MAX));
    [full_params, sparse_params]
        .into_iter()
        .map(|params| {
            let mut h = Hll::new(params);
            for (j, &r) in registers.iter().enumerate() {
                if r != 0 {
                    h.add_raw(raw_for(&params, j as u64, u32::from(r)));
                }
            }
            assert_eq!(h.registers().unwrap(), registers);
            h
        })
        .collect()
}

/// Register states: mostly zeros (small range), typical, and saturated (large range).
fn states() -> impl Strategy<Value = (HllParams, Vec<u8>)> {
    let sets = param_sets();
    (0..sets.len(), 0u8..4, any::<u64>()).prop_map(move |(i, shape, seed)| {
        let p = sets[i];
        let max = p.max_register().min(64 - p.log2m());
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let registers = (0..p.m())
            .map(|_| {
                let x = next();
                let r = match shape {
                    0 => u8::from(x % 8 == 0) * (1 + (x >> 8) as u8 % max), // sparse: small range
                    1 => (x.trailing_zeros() as u8 + 1).min(max),           // like real hashes
                    2 => max - ((x % 3) as u8).min(max - 1),                // near saturation
                    _ => (x % u64::from(max + 1)) as u8,                    // uniform
                };
                r.min(max)
            })
            .collect();
        (p, registers)
    })
}

#[test]
fn estimate_is_bit_identical_to_the_reference_in_every_branch() {
    let mut branches = Branches::default();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 400,
        ..ProptestConfig::default()
    });
    let counted = std::cell::RefCell::new(&mut branches);
    runner
        .run(&states(), |(p, registers)| {
            let expected = reference(&p, &registers, &mut counted.borrow_mut());
            for h in hlls_with(p, &registers) {
                let got = h.estimate().unwrap();
                prop_assert!(
                    got.to_bits() == expected.to_bits() || (got.is_nan() && expected.is_nan()),
                    "{:?} {}: {} != {}",
                    p,
                    h.hll_type(),
                    got,
                    expected
                );
            }
            Ok(())
        })
        .unwrap();
    assert!(
        branches.small > 10 && branches.raw > 10 && branches.large > 10,
        "every branch must be exercised: {branches:?}"
    );
}

#[test]
fn saturated_registers_give_cardinality_zero_as_java_hll() {
    // Every register at its maximum: 1 - E/2^L < 0, the logarithm is NaN, ceil(NaN) as long = 0.
    let p = HllParams::new(4, 2).unwrap();
    let registers = vec![3u8; 16];
    for h in hlls_with(p, &registers) {
        assert!(h.estimate().unwrap().is_nan());
        assert_eq!(h.cardinality(), Some(0));
    }
}
