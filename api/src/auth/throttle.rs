//! `LoginThrottle`: slows password guessing. Each client address gets a
//! budget of failed logins per window; past it, logins are refused with 429
//! before any password is checked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed per client address and window.
pub const MAX_FAILURES: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Failed-login counts per client address.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl LoginThrottle {
    /// `Err(seconds to wait)` when `client` has used up its budget.
    pub fn check(&self, client: IpAddr) -> Result<(), u64> {
        let failures = self.lock();
        match failures.get(&client) {
            Some((count, since)) if *count >= MAX_FAILURES && since.elapsed() < WINDOW => {
                Err((WINDOW - since.elapsed()).as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    /// Records a failed login.
    pub fn failed(&self, client: IpAddr) {
        let mut failures = self.lock();
        if failures.len() > 100_000 {
            // Bounded memory under a flood of addresses: drop expired entries.
            failures.retain(|_, (_, since)| since.elapsed() < WINDOW);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Forgets a client's failures after a successful login.
    pub fn succeeded(&self, client: IpAddr) {
        self.lock().remove(&client);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_after_the_budget_and_forgives_on_success() {
        let t = LoginThrottle::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert!(t.check(ip).is_ok());
            t.failed(ip);
        }
        assert!(t.check(ip).is_err());
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(t.check(other).is_ok());
        t.succeeded(ip);
        assert!(t.check(ip).is_ok());
    }
}
