//! Password hashing with argon2id (the crate's default parameters).

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

/// Hashes a password into a PHC string (`$argon2id$…`). CPU-heavy: call it
/// off the async workers.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Checks a password against a PHC string. A malformed stored hash counts
/// as a mismatch. CPU-heavy: call it off the async workers.
pub fn verify_password(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery staple", &h));
        assert!(!verify_password("wrong", &h));
    }

    #[test]
    fn same_password_hashes_differently() {
        assert_ne!(hash_password("pw").unwrap(), hash_password("pw").unwrap());
    }

    #[test]
    fn malformed_hash_never_verifies() {
        assert!(!verify_password("pw", "not a hash"));
    }
}
