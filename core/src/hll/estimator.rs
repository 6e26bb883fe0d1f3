//! java-hll's estimator, evaluated so that the floating-point result is bit-identical.
//!
//! java-hll sums `1.0 / (1L << M[j])` over the registers in index order. Every term is an exact
//! power of two (or, for crafted registers ≥ 63, Java's wrapped shift of one). When
//! `log2m + max register ≤ 52` every partial sum is a multiple of `2^-max` below `2^log2m` and so
//! exactly representable in an `f64`: the sum is exact in any order, and a histogram of register
//! values gives the same bits as the sequential loop at a fraction of its cost. Otherwise the
//! registers are summed in index order, exactly as java-hll does.

use std::collections::BTreeMap;

use super::HllParams;

/// The estimate of a FULL HLL.
pub(super) fn full(params: &HllParams, registers: &[u8]) -> f64 {
    // Four histograms break the store-to-load dependency when neighbours share a value.
    let mut hist = [[0u32; 256]; 4];
    let mut chunks = registers.chunks_exact(4);
    for c in &mut chunks {
        hist[0][usize::from(c[0])] += 1;
        hist[1][usize::from(c[1])] += 1;
        hist[2][usize::from(c[2])] += 1;
        hist[3][usize::from(c[3])] += 1;
    }
    for &r in chunks.remainder() {
        hist[0][usize::from(r)] += 1;
    }
    let mut merged = [0u64; 256];
    for h in &hist {
        for (total, &count) in merged.iter_mut().zip(h.iter()) {
            *total += u64::from(count);
        }
    }
    let zeros = merged[0];
    let sum = exact_sum(params, &merged)
        .unwrap_or_else(|| registers.iter().map(|&r| term(r)).fold(0.0, |s, t| s + t));
    finish(params, sum, zeros)
}

/// The estimate of a SPARSE HLL (absent registers are zero).
pub(super) fn sparse(params: &HllParams, map: &BTreeMap<u32, u8>) -> f64 {
    let m = params.m();
    let mut hist = [0u64; 256];
    hist[0] = (m - map.len()) as u64;
    for &value in map.values() {
        hist[usize::from(value)] += 1;
    }
    let zeros = hist[0];
    let sum = exact_sum(params, &hist).unwrap_or_else(|| {
        // Index order, zeros included, as java-hll's loop over j in 0..m.
        let mut sum = 0.0;
        let mut next = 0usize;
        for (&j, &value) in map {
            for _ in next..j as usize {
                sum += 1.0;
            }
            sum += term(value);
            next = j as usize + 1;
        }
        for _ in next..m {
            sum += 1.0;
        }
        sum
    });
    finish(params, sum, zeros)
}

/// `1.0 / (1L << r)` with Java's shift semantics (the shift distance is taken mod 64).
#[inline]
fn term(r: u8) -> f64 {
    1.0 / (1i64.wrapping_shl(u32::from(r)) as f64)
}

/// The indicator sum from a histogram, when it is provably exact (see the module docs).
fn exact_sum(params: &HllParams, hist: &[u64; 256]) -> Option<f64> {
    let max = hist.iter().rposition(|&c| c != 0).unwrap_or(0);
    if usize::from(params.log2m()) + max > 52 {
        return None;
    }
    Some(
        hist.iter()
            .enumerate()
            .take(max + 1)
            .map(|(r, &count)| count as f64 * term(r as u8))
            .fold(0.0, |s, t| s + t),
    )
}

/// java-hll's corrections, in its order of floating-point operations.
fn finish(params: &HllParams, sum: f64, zeros: u64) -> f64 {
    let m = params.m() as f64;
    let estimator = alpha_m_squared(params.m()) / sum;
    // HLLUtil.smallEstimatorCutoff: ((double) m * 5) / 2
    let small_cutoff = (m * 5.0) / 2.0;
    // HLLUtil.TWO_TO_L: 2^((2^regwidth - 2) + log2m); powers of two are exact.
    let bits = ((1i32 << params.regwidth()) - 2) + i32::from(params.log2m());
    let two_to_l = 2f64.powi(bits);
    if zeros != 0 && estimator < small_cutoff {
        m * (m / zeros as f64).ln()
    } else if estimator <= two_to_l / 30.0 {
        estimator
    } else {
        -two_to_l * (1.0 - (estimator / two_to_l)).ln()
    }
}

/// HLLUtil.alphaMSquared, with java-hll's left-to-right evaluation.
fn alpha_m_squared(m: usize) -> f64 {
    let mf = m as f64;
    match m {
        16 => 0.673 * mf * mf,
        32 => 0.697 * mf * mf,
        64 => 0.709 * mf * mf,
        _ => (0.7213 / (1.0 + 1.079 / mf)) * mf * mf,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequential(registers: &[u8]) -> f64 {
        registers.iter().map(|&r| term(r)).fold(0.0, |s, t| s + t)
    }

    #[test]
    fn histogram_sum_is_bit_identical_to_sequential_sum() {
        let params = HllParams::janssen();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut registers = vec![0u8; params.m()];
        for r in registers.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *r = (state % 32) as u8;
        }
        let mut hist = [0u64; 256];
        for &r in &registers {
            hist[usize::from(r)] += 1;
        }
        let exact = exact_sum(&params, &hist).expect("15 + 31 <= 52");
        assert_eq!(exact.to_bits(), sequential(&registers).to_bits());
    }

    #[test]
    fn wide_registers_fall_back_to_index_order() {
        let params = HllParams::new(10, 8).unwrap();
        let mut hist = [0u64; 256];
        hist[50] = 1;
        hist[0] = 1023;
        assert!(exact_sum(&params, &hist).is_none());
    }

    #[test]
    fn java_shift_semantics_of_terms() {
        assert_eq!(term(0), 1.0);
        assert_eq!(term(31), 1.0 / 2147483648.0);
        assert!(term(63) < 0.0, "1L << 63 is negative in Java");
        assert_eq!(term(64), 1.0, "1L << 64 == 1L << 0 in Java");
    }
}
