//! Small checks shared by the configuration's sections (a leaf: it knows no section).

use serde::{Deserialize, Deserializer};

/// `true` (a serde default).
pub(crate) fn yes() -> bool {
    true
}

/// A whole number greater than 0 (for `deserialize_with`).
pub(crate) fn positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 {
        return Err(serde::de::Error::custom("must be greater than 0"));
    }
    Ok(v)
}

/// A whole number greater than 0, or absent (for `deserialize_with`).
pub fn optional_positive_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    positive_u64(d).map(Some)
}

/// Refuses an option that is set but not one of `allowed`, the options of `section` type
/// `name` (a tagged section written flat, such as `backend:` or `api.auth:`).
pub(crate) fn only_options(
    section: &str,
    name: &str,
    allowed: &[&str],
    given: &[(&str, bool)],
) -> Result<(), String> {
    match given.iter().find(|(o, set)| *set && !allowed.contains(o)) {
        None => Ok(()),
        Some((option, _)) => Err(format!(
            "`{option}` is not an option of {section} type {name} (its options: {})",
            if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            }
        )),
    }
}
