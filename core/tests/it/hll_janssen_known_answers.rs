//! java-hll 1.6.0 known answers with Janssen's setting and hash (janssen-compat.md, section 3).

use authstat_core::hash::HashAlgorithm;
use authstat_core::hll::{Hll, HllParams, HllType};

fn janssen_hll(users: &[&str]) -> Hll {
    let mut h = Hll::new(HllParams::janssen());
    for u in users {
        h.add_raw(HashAlgorithm::JavaStringHashCode.hash(u));
    }
    h
}

#[test]
fn known_answers_serialize_like_java_hll() {
    let cases: &[(&[&str], &str, u64)] = &[
        (&[], "EY9/", 0),
        (
            &["admin", "user1", "user2", "admin"],
            "Eo9/AAAAAAWGA08AAAAABqaNxgAAAAAGpo3H",
            3,
        ),
        (
            &["admin", "polygenelubricants", "zzzzzzzzzz"],
            "Eo9//////4AAAAD/////ocQsQAAAAAAFhgNP",
            3,
        ),
    ];
    for &(users, base64, cardinality) in cases {
        let h = janssen_hll(users);
        assert_eq!(h.to_base64().unwrap(), base64, "{users:?}");
        assert_eq!(h.cardinality(), Some(cardinality), "{users:?}");
        let back = Hll::from_base64(base64).unwrap();
        assert_eq!(back, h, "{users:?}");
    }
}

#[test]
fn union_known_answer() {
    let mut a = janssen_hll(&["alice", "bob"]);
    let b = janssen_hll(&["bob", "carol"]);
    a.union(&b).unwrap();
    assert_eq!(
        a.to_base64().unwrap(),
        "Eo9/AAAAAAABfbUAAAAABYmWgAAAAAAFoOix"
    );
    assert_eq!(a.cardinality(), Some(3));
}

#[test]
fn explicit_values_are_sorted_as_signed_integers() {
    let h = janssen_hll(&["admin", "polygenelubricants", "zzzzzzzzzz"]);
    let values = h.explicit_values().unwrap();
    assert_eq!(
        values[0],
        i64::from(i32::MIN),
        "polygenelubricants hashes to i32::MIN"
    );
    assert!(values.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn full_janssen_hll_is_20483_bytes() {
    let mut h = Hll::new(HllParams::janssen());
    for i in 0..20_000 {
        h.add_raw(HashAlgorithm::Murmur3.hash(&format!("user{i}")));
    }
    assert_eq!(h.hll_type(), HllType::Full);
    let bytes = h.to_bytes().unwrap();
    assert_eq!(bytes.len(), 20483);
    assert_eq!(&bytes[..3], &[0x14, 0x8f, 0x7f]);
    assert_eq!(Hll::from_bytes(&bytes).unwrap(), h);
}

/// Janssen's hash (Java's `String.hashCode`) under-counts sequential user names badly; these
/// are the numbers java-hll gives (janssen-compat.md), and the reason authstat defaults to murmur3.
#[test]
fn janssen_hash_undercounts_exactly_as_java_hll() {
    let mut h = Hll::new(HllParams::janssen());
    for i in 0..100_000 {
        h.add_raw(HashAlgorithm::JavaStringHashCode.hash(&format!("user{i}")));
    }
    assert_eq!(h.cardinality(), Some(39231));
    for i in 100_000..1_000_000 {
        h.add_raw(HashAlgorithm::JavaStringHashCode.hash(&format!("user{i}")));
    }
    assert_eq!(h.cardinality(), Some(555483));
}
