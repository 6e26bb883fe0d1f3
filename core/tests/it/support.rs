//! Helpers shared by the test modules.

use std::path::PathBuf;

use authstat_core::hll::{ExplicitThreshold, Hll, HllParams};

/// A file of `core/tests/data`.
pub fn data_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// PostgreSQL's `\x0A1B…` hex form.
pub fn from_pg_hex(s: &str) -> Vec<u8> {
    let hex = s.strip_prefix("\\x").expect("\\x prefix");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// An HLL with `values` added in order.
pub fn hll_of(params: HllParams, values: impl IntoIterator<Item = i64>) -> Hll {
    let mut h = Hll::new(params);
    for v in values {
        h.add_raw(v);
    }
    h
}

/// A raw value that sets register `j` to exactly `p` (1 ≤ p ≤ 64 - log2m).
pub fn raw_for(params: &HllParams, j: u64, p: u32) -> i64 {
    ((1u64 << (u32::from(params.log2m()) + p - 1)) | j) as i64
}

/// Parameter sets covering the corners java-hll accepts (small enough to test quickly).
pub fn param_sets() -> Vec<HllParams> {
    let mut sets = vec![
        HllParams::janssen(),
        HllParams::new(4, 1).unwrap(),
        HllParams::new(4, 8).unwrap(),
        HllParams::new(9, 5)
            .unwrap()
            .with_explicit(ExplicitThreshold::Values(64))
            .unwrap(),
        HllParams::new(11, 6).unwrap().with_sparse(false),
        HllParams::new(10, 4)
            .unwrap()
            .with_explicit(ExplicitThreshold::Off)
            .unwrap(),
        HllParams::new(10, 5)
            .unwrap()
            .with_explicit(ExplicitThreshold::Off)
            .unwrap()
            .with_sparse(false),
        HllParams::new(12, 5).unwrap().with_max_sparse(Some(40)),
        HllParams::new(8, 7)
            .unwrap()
            .with_explicit(ExplicitThreshold::Values(1))
            .unwrap(),
    ];
    sets.push(
        HllParams::new(6, 3)
            .unwrap()
            .with_explicit(ExplicitThreshold::Values(1 << 17))
            .unwrap(),
    );
    sets
}
