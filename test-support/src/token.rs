//! Static API tokens as the configuration holds them.

use sha2::{Digest, Sha256};

/// The SHA-256 of `token` in lower-case hex (`api.auth.tokens[].sha256`).
pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_token_hashes_as_the_example_configuration_says() {
        assert_eq!(
            super::sha256_hex("example-token"),
            "4d1566a1d7df42a8517456d60ea06ed284e535cfe4c956aa6ee172dbcdf945f7"
        );
    }
}
