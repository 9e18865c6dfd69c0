//! Password hashing with argon2id (the crate's default parameters), PHC
//! strings in and out.
//!
//! The argon2 memory (19 MiB at the default parameters) is allocated once
//! per thread and reused, rather than by the crate on every call: allocated
//! and freed on each login, glibc kept up to three copies per thread in its
//! arenas, and ten logins took the API from 29 MB to 244 MB (issue 14). Call
//! these on [`PasswordWorkers`](super::PasswordWorkers), whose fixed threads
//! make the memory one buffer per worker.

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use rand::RngCore;
use std::cell::RefCell;

/// The largest memory cost a stored hash may ask for (KiB), so a hash
/// written by another tool cannot make a login allocate without bound.
const MAX_M_COST_KIB: u32 = 256 * 1024;
/// Salt length in bytes (the PHC recommendation).
const SALT_BYTES: usize = 16;

thread_local! {
    /// This thread's argon2 memory, grown to the largest cost seen.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with at least `blocks` argon2 blocks of this thread's memory.
fn with_memory<T>(blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        f(&mut memory[..blocks])
    })
}

/// Hashes a password into a PHC string (`$argon2id$…`). CPU-heavy: call it
/// on the password workers.
pub fn hash_password(password: &str) -> Result<String, String> {
    let params = Params::default();
    let mut salt = [0u8; SALT_BYTES];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)
    })
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(Salt::new(&salt).map_err(|e| e.to_string())?),
        hash: Some(Output::new(&out).map_err(|e| e.to_string())?),
    };
    Ok(phc.to_string())
}

/// Checks a password against a PHC string. A malformed stored hash, or one
/// asking for more than 256 MiB, counts as a mismatch. CPU-heavy: call it
/// on the password workers.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let version = match hash.version.map(Version::try_from) {
        None => Version::default(),
        Some(Ok(version)) => version,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if params.m_cost() > MAX_M_COST_KIB {
        return false;
    }
    let mut out = vec![0u8; expected.len()];
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = with_memory(params.block_count(), |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), &mut out, memory)
    });
    computed.is_ok() && constant_time_eq(&out, expected.as_bytes())
}

/// Compares without an early exit, so the time taken says nothing about
/// where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordHasher;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash_password("correct horse battery staple").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
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
        assert!(!verify_password("pw", "$argon2id$v=19$m=19456,t=2,p=1$"));
    }

    #[test]
    fn hashes_made_by_the_argon2_crate_itself_verify() {
        // Every hash stored before this module managed its own memory.
        let stored = Argon2::default()
            .hash_password(b"an older password")
            .unwrap()
            .to_string();
        assert!(verify_password("an older password", &stored));
        assert!(!verify_password("another", &stored));
    }

    #[test]
    fn our_hashes_verify_with_the_argon2_crate() {
        use argon2::PasswordVerifier;
        let h = hash_password("portable").unwrap();
        assert!(Argon2::default()
            .verify_password(b"portable", h.as_str())
            .is_ok());
    }

    #[test]
    fn a_hash_asking_for_too_much_memory_never_verifies() {
        let greedy = "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHRzYWx0$\
                      aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
        assert!(!verify_password("pw", greedy));
    }
}
