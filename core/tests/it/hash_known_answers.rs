//! Known answers for both hashes: Java `String.hashCode()` and Guava's murmur3_128.

use authstat_core::hash::{HashAlgorithm, java_string_hashcode, murmur3_x64_128};

use crate::support::data_file;

#[test]
fn java_string_hashcode_known_answers() {
    // From janssen-compat.md (values printed by Java).
    let cases: &[(&str, i32)] = &[
        ("admin", 92668751),
        ("user1", 111578566),
        ("jose@example.com", 1701192340),
        ("Ωmega", 868686747),
        ("ñ😀", 2004500),
        ("polygenelubricants", -2147483648),
        ("", 0),
    ];
    for &(s, expected) in cases {
        assert_eq!(java_string_hashcode(s), expected, "{s}");
        assert_eq!(
            HashAlgorithm::JavaStringHashCode.hash(s),
            i64::from(expected),
            "sign-extended {s}"
        );
    }
}

#[test]
fn murmur3_known_answers_from_the_compat_doc() {
    assert_eq!(HashAlgorithm::Murmur3.hash("hell"), 0x629942693e10f867);
    assert_eq!(HashAlgorithm::Murmur3.hash("user1"), -1727604350198519072);
}

fn guava_hex(h1: u64, h2: u64) -> String {
    let mut bytes = h1.to_le_bytes().to_vec();
    bytes.extend_from_slice(&h2.to_le_bytes());
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every line of Guava's known answers: all input lengths 0..=N for five seeds, strings with
/// multi-byte UTF-8, and `hashLong`.
#[test]
fn murmur3_matches_guava_for_every_known_answer() {
    let text = data_file("murmur3-guava.txt");
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (kind, rest) = line.split_once(' ').unwrap();
        let (seed, rest) = rest.split_once(' ').unwrap();
        // Guava sign-extends an int seed to 64 bits.
        let seed = seed.parse::<i64>().unwrap() as i32 as i64 as u64;
        let (input, expected_hex, as_long): (Vec<u8>, &str, Option<i64>) = match kind {
            "bytes" => {
                let mut parts = rest.split(' ');
                let len: usize = parts.next().unwrap().parse().unwrap();
                let hex = parts.next().unwrap();
                let as_long = parts.next().unwrap().parse().unwrap();
                let input = (0..len).map(|i| ((i * 37 + 11) % 256) as u8).collect();
                (input, hex, Some(as_long))
            }
            "str" => {
                let open = rest.find('[').unwrap();
                let close = rest.rfind(']').unwrap();
                (
                    rest.as_bytes()[open + 1..close].to_vec(),
                    rest[close + 1..].trim(),
                    None,
                )
            }
            "long" => {
                let (n, hex) = rest.split_once(' ').unwrap();
                (n.parse::<i64>().unwrap().to_le_bytes().to_vec(), hex, None)
            }
            other => panic!("unknown line kind {other}"),
        };
        let (h1, h2) = murmur3_x64_128(&input, seed);
        assert_eq!(guava_hex(h1, h2), expected_hex, "line: {line}");
        if let Some(as_long) = as_long {
            assert_eq!(h1 as i64, as_long, "asLong, line: {line}");
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} known answers read");
}

#[test]
fn hash_algorithm_names_and_serde() {
    for (name, algo) in [
        ("murmur3", HashAlgorithm::Murmur3),
        ("java_string_hashcode", HashAlgorithm::JavaStringHashCode),
    ] {
        assert_eq!(name.parse::<HashAlgorithm>().unwrap(), algo);
        assert_eq!(algo.to_string(), name);
        assert_eq!(serde_json::to_string(&algo).unwrap(), format!("\"{name}\""));
        assert_eq!(
            serde_json::from_str::<HashAlgorithm>(&format!("\"{name}\"")).unwrap(),
            algo
        );
    }
    assert_eq!(HashAlgorithm::default(), HashAlgorithm::Murmur3);
    let err = "md5".parse::<HashAlgorithm>().unwrap_err().to_string();
    assert!(err.contains("'md5'") && err.contains("murmur3"), "{err}");
}
