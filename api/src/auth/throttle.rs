//! `LoginThrottle`: slows password guessing. Failed logins are counted per
//! client address and per user name, each with a budget per window; past
//! either budget, logins are refused with 429 before any password is
//! checked.
//!
//! An attempt takes its place in both budgets *before* the password is
//! checked ([`LoginThrottle::begin`]), under one lock: a burst of concurrent
//! guesses cannot all pass the check before the first failure is recorded.
//! It stays counted as a failure unless it succeeds, and a success gives
//! back only its own place: it clears its own account's failures, never the
//! client's or another account's, so logging in to one's own account
//! between guesses at another buys nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed per client address, and per user name, per window.
pub const MAX_FAILURES: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Entries kept before expired ones are swept (bounded memory under a
/// flood of addresses or names).
const SWEEP_AT: usize = 100_000;

/// Failed-login counts per client address and per user name.
#[derive(Default)]
pub struct LoginThrottle {
    budgets: Mutex<Budgets>,
}

#[derive(Default)]
struct Budgets {
    clients: Counts<IpAddr>,
    users: Counts<String>,
}

/// Failures per key in the current window of each key.
struct Counts<K>(HashMap<K, Window>);

impl<K> Default for Counts<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

#[derive(Clone, Copy)]
struct Window {
    failures: u32,
    since: Instant,
}

impl<K: Hash + Eq> Counts<K> {
    /// Seconds until `key` may try again, if its budget is used up.
    fn wait(&self, key: &K) -> Option<u64> {
        let w = self.0.get(key)?;
        let elapsed = w.since.elapsed();
        (w.failures >= MAX_FAILURES && elapsed < WINDOW)
            .then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    fn add(&mut self, key: K) {
        if self.0.len() >= SWEEP_AT {
            self.0.retain(|_, w| w.since.elapsed() < WINDOW);
        }
        let w = self.0.entry(key).or_insert(Window {
            failures: 0,
            since: Instant::now(),
        });
        if w.since.elapsed() >= WINDOW {
            *w = Window {
                failures: 0,
                since: Instant::now(),
            };
        }
        w.failures += 1;
    }

    fn give_back(&mut self, key: &K) {
        if let Some(w) = self.0.get_mut(key) {
            w.failures = w.failures.saturating_sub(1);
        }
    }

    fn clear(&mut self, key: &K) {
        self.0.remove(key);
    }
}

/// One login attempt, counted as a failure of its client and its user name
/// until [`succeeded`](Self::succeeded) or [`abandoned`](Self::abandoned)
/// says otherwise.
#[must_use = "an attempt dropped without an outcome counts as a failure"]
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    client: IpAddr,
    user: String,
}

impl LoginThrottle {
    /// Starts an attempt by `client` at `username` (compared without case),
    /// or `Err(seconds to wait)` when either has used up its budget.
    pub fn begin(&self, client: IpAddr, username: &str) -> Result<LoginAttempt<'_>, u64> {
        let user = username.to_ascii_lowercase();
        let mut budgets = self.lock();
        let wait = [budgets.clients.wait(&client), budgets.users.wait(&user)]
            .into_iter()
            .flatten()
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        budgets.clients.add(client);
        budgets.users.add(user.clone());
        Ok(LoginAttempt {
            throttle: self,
            client,
            user,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Budgets> {
        // Counters updated in place: a panic cannot leave them half-written.
        self.budgets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LoginAttempt<'_> {
    /// The password was right: the attempt gives back its place in the
    /// client's budget, and the account's failures are forgiven (its owner
    /// has shown they know the password). Other accounts' failures, and
    /// the client's earlier ones, stay.
    pub fn succeeded(self) {
        let mut budgets = self.throttle.lock();
        budgets.clients.give_back(&self.client);
        budgets.users.clear(&self.user);
    }

    /// The password was never checked (the server was too busy): the
    /// attempt gives back both places.
    pub fn abandoned(self) {
        let mut budgets = self.throttle.lock();
        budgets.clients.give_back(&self.client);
        budgets.users.give_back(&self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_client_is_refused_after_its_budget_of_failures() {
        let t = LoginThrottle::default();
        for i in 0..MAX_FAILURES {
            drop(t.begin(ip(1), &format!("user{i}")).unwrap());
        }
        assert!(t.begin(ip(1), "someone-else").is_err());
        assert!(t.begin(ip(2), "someone-else").is_ok());
    }

    #[test]
    fn a_user_name_is_refused_after_its_budget_whatever_the_client() {
        let t = LoginThrottle::default();
        for i in 0..MAX_FAILURES {
            drop(t.begin(ip(i as u8), "victim").unwrap());
        }
        assert!(t.begin(ip(200), "victim").is_err());
        assert!(
            t.begin(ip(200), "VICTIM").is_err(),
            "names compare without case"
        );
        assert!(t.begin(ip(200), "other").is_ok());
    }

    #[test]
    fn attempts_in_flight_count_before_their_outcome() {
        let t = LoginThrottle::default();
        let in_flight: Vec<_> = (0..MAX_FAILURES)
            .map(|_| t.begin(ip(1), "victim").unwrap())
            .collect();
        assert!(t.begin(ip(1), "victim").is_err());
        drop(in_flight);
    }

    #[test]
    fn a_success_on_another_account_does_not_reset_the_guesses() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES - 1 {
            drop(t.begin(ip(1), "victim").unwrap());
        }
        t.begin(ip(1), "attacker").unwrap().succeeded();
        drop(t.begin(ip(1), "victim").unwrap());
        assert!(t.begin(ip(1), "victim").is_err());
        assert!(
            t.begin(ip(1), "attacker").is_err(),
            "the client's budget is spent"
        );
    }

    #[test]
    fn a_success_forgives_its_own_accounts_failures() {
        let t = LoginThrottle::default();
        for i in 0..MAX_FAILURES - 1 {
            drop(t.begin(ip(i as u8), "alice").unwrap());
        }
        t.begin(ip(100), "alice").unwrap().succeeded();
        for i in 0..MAX_FAILURES - 1 {
            drop(t.begin(ip(i as u8 + 10), "alice").unwrap());
        }
        assert!(t.begin(ip(101), "alice").is_ok());
    }

    #[test]
    fn an_abandoned_attempt_costs_nothing() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES * 3 {
            t.begin(ip(1), "alice").unwrap().abandoned();
        }
        assert!(t.begin(ip(1), "alice").is_ok());
    }
}
