//! Accuracy: the estimate of n distinct murmur3-hashed ids is within 3 standard errors.

use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams};

fn relative_error(params: HllParams, n: u64) -> (f64, f64) {
    let mut h = Hll::new(params);
    let mut buf = String::new();
    for i in 0..n {
        use std::fmt::Write;
        buf.clear();
        write!(buf, "user-{i}@example.com").unwrap();
        h.add_raw(HashAlgorithm::Murmur3.hash(&buf));
    }
    let estimate = h.cardinality().unwrap() as f64;
    let sigma = 1.04 / (params.m() as f64).sqrt();
    ((estimate - n as f64).abs() / n as f64, sigma)
}

#[test]
fn one_million_ids_within_three_standard_errors_at_janssen_settings() {
    let (error, sigma) = relative_error(HllParams::janssen(), 1_000_000);
    assert!(
        error <= 3.0 * sigma,
        "relative error {error:.5} > 3σ = {:.5}",
        3.0 * sigma
    );
}

#[test]
fn small_and_medium_counts_within_three_standard_errors() {
    // Below 2.5m the small-range correction (linear counting) applies; above, the raw estimate.
    for (log2m, n) in [(11u8, 1_000u64), (11, 20_000), (13, 5_000), (13, 200_000)] {
        let (error, sigma) = relative_error(HllParams::new(log2m, 5).unwrap(), n);
        assert!(
            error <= 3.0 * sigma,
            "log2m {log2m}, n {n}: {error:.5} > {:.5}",
            3.0 * sigma
        );
    }
}
