//! Property tests: serialization round trips, union laws, and `from_bytes` on arbitrary bytes
//! (the in-tree fuzz target: it runs with every `cargo test`).

use authstat_core::hll::{Hll, HllParams, HllType};
use proptest::prelude::*;

use crate::support::{hll_of, param_sets};

fn params() -> impl Strategy<Value = HllParams> {
    let sets = param_sets();
    (0..sets.len()).prop_map(move |i| sets[i])
}

/// Raw values that exercise every register value: a random index, then `w` with a random number
/// of trailing zeros (uniform 64-bit values would give p = 1 or 2 almost always).
fn raw_values(max: usize) -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(
        prop_oneof![
            any::<i64>(),
            (any::<u64>(), 0u32..64)
                .prop_map(|(bits, shift)| (bits << shift | (bits & 0xffff)) as i64),
            Just(0i64),
        ],
        0..max,
    )
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn to_bytes_then_from_bytes_is_identity(p in params(), values in raw_values(600)) {
        let h = hll_of(p, values);
        let bytes = h.to_bytes().unwrap();
        let back = Hll::from_bytes_with_max_sparse(&bytes, p.max_sparse()).unwrap();
        prop_assert_eq!(&back, &h);
        prop_assert_eq!(back.to_bytes().unwrap(), bytes);
    }

    /// On registers (and so on estimates): the representation may legitimately change, since
    /// java-hll checks promotion thresholds only on some paths. A SPARSE HLL left above its
    /// threshold by a promotion replay is promoted to FULL by the next union, even with itself.
    #[test]
    fn union_is_commutative_on_registers_and_idempotent(
        p in params(), a in raw_values(400), b in raw_values(400)
    ) {
        let (ha, hb) = (hll_of(p, a), hll_of(p, b));
        let mut ab = ha.clone();
        ab.union(&hb).unwrap();
        let mut ba = hb.clone();
        ba.union(&ha).unwrap();
        prop_assert_eq!(ab.registers(), ba.registers());
        let mut aa = ha.clone();
        aa.union(&ha).unwrap();
        prop_assert_eq!(aa.registers(), ha.registers());
        prop_assert_eq!(aa.cardinality(), ha.cardinality());
        let mut abb = ab.clone();
        abb.union(&hb).unwrap();
        prop_assert_eq!(abb.registers(), ab.registers());
        prop_assert_eq!(abb.cardinality(), ab.cardinality());
    }

    #[test]
    fn union_equals_the_hll_of_the_combined_inputs(
        p in params(), a in raw_values(400), b in raw_values(400)
    ) {
        let mut u = hll_of(p, a.iter().copied());
        u.union(&hll_of(p, b.iter().copied())).unwrap();
        let combined = hll_of(p, a.iter().chain(&b).copied());
        prop_assert_eq!(u.registers(), combined.registers());
        let probabilistic = |h: &Hll| matches!(h.hll_type(), HllType::Sparse | HllType::Full);
        if probabilistic(&u) == probabilistic(&combined) {
            prop_assert_eq!(u.cardinality(), combined.cardinality());
        }
    }

    #[test]
    fn from_bytes_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        check_decoded(&bytes);
    }

    /// Valid headers with arbitrary bodies reach far deeper into the decoder than random bytes.
    #[test]
    fn from_bytes_never_panics_on_valid_headers_with_arbitrary_bodies(
        type_nibble in 0u8..6,
        params_byte in any::<u8>(),
        cutoff in any::<u8>(),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![0x10 | type_nibble, params_byte & 0b1110_1111, cutoff];
        bytes.extend(body);
        check_decoded(&bytes);
    }

    #[test]
    fn from_bytes_never_panics_on_mutated_valid_bytes(
        p in params(), values in raw_values(300), edits in prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut bytes = hll_of(p, values).to_bytes().unwrap();
        for (at, byte, op) in edits {
            let at = at % (bytes.len() + 1);
            match op {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => bytes.truncate(at),
            }
        }
        check_decoded(&bytes);
    }
}

/// Whatever decodes re-encodes to something that decodes to the same HLL.
fn check_decoded(bytes: &[u8]) {
    if let Ok(h) = Hll::from_bytes(bytes) {
        if h.hll_type() == HllType::Undefined {
            assert!(h.to_bytes().is_err());
        } else {
            let again = h.to_bytes().unwrap();
            assert_eq!(Hll::from_bytes(&again).unwrap(), h);
            let _ = h.cardinality();
        }
    }
}

#[test]
fn decoding_errors_name_the_problem() {
    let cases: &[(&[u8], &str)] = &[
        (&[], "shorter than the header"),
        (&[0x21, 0x8f, 0x7f], "schema version 2"),
        (&[0x15, 0x8f, 0x7f], "type 5"),
        (&[0x11, 0x83, 0x7f], "log2m 3"),
        (&[0x11, 0x8f, 0xff], "top bit"),
        (&[0x11, 0x8f, 0x53], "cutoff 19"),
        (&[0x11, 0x8f, 0x7f, 0x00], "EMPTY has 1 body bytes"),
        (
            &[0x12, 0x8f, 0x7f, 0, 0, 0, 0, 0, 0, 0],
            "not a multiple of 8",
        ),
        (
            &[0x14, 0x8f, 0x7f, 0, 0],
            "FULL body of 2 bytes, expected 20480",
        ),
        // log2m 4, regwidth 1: 5-bit words; 2 bytes = 16 bits = 3 words + 1 bit: fine; 3 bytes
        // hold 4 words + 4 bits: fine; a 5-bit-or-more remainder needs regwidth + log2m > 8.
        (&[0x13, 0x8f, 0x7f, 0, 0, 0, 0], "leaves 12 padding bits"),
    ];
    for &(bytes, needle) in cases {
        let err = Hll::from_bytes(bytes).unwrap_err().to_string();
        assert!(err.contains(needle), "{bytes:02x?}: {err}");
    }
    let err = Hll::from_base64("not base64!").unwrap_err().to_string();
    assert!(err.contains("base64"), "{err}");
}
