//! `LoginThrottle`: slows password guessing without letting a guesser lock
//! an account's owner out.
//!
//! Two budgets of failed logins, both checked before any password is:
//!
//! * **per client address**: [`MAX_FAILURES`] per [`WINDOW`]. One address
//!   guesses slowly, at any account.
//! * **per account, from addresses it has never logged in from**:
//!   [`MAX_ACCOUNT_FAILURES`] per [`ACCOUNT_WINDOW`], whatever the address.
//!   Guessing from many addresses at one account is slowed too, while its
//!   owner, from an address that has logged in to it before, is never
//!   refused for what others did. (Only a guesser on the owner's own
//!   address spends a budget the owner shares.)
//!
//! An attempt takes its place in its budgets *before* the password is
//! checked ([`LoginThrottle::begin`]), under one lock: a burst of concurrent
//! guesses cannot all pass the check before the first failure is recorded.
//! It stays counted as a failure unless it succeeds, and a success gives
//! back only its own place: logging in to one's own account between
//! guesses at another buys nothing.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins allowed per client address per window.
pub const MAX_FAILURES: u32 = 10;
/// The client window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed logins allowed per account, from addresses that have not logged
/// in to it before, per account window.
pub const MAX_ACCOUNT_FAILURES: u32 = 100;
/// The account window.
pub const ACCOUNT_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long an address that logged in to an account stays known to it.
pub const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Entries kept before expired ones are swept (bounded memory under a
/// flood of addresses or names).
const SWEEP_AT: usize = 100_000;

/// Failed-login counts per client address and per account, and the
/// addresses each account was logged in from.
#[derive(Default)]
pub struct LoginThrottle {
    budgets: Mutex<Budgets>,
}

#[derive(Default)]
struct Budgets {
    clients: Counts<IpAddr>,
    accounts: Counts<String>,
    /// When each (address, account) last logged in successfully.
    known: HashMap<(IpAddr, String), Instant>,
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
    /// Seconds until `key` may try again, if its budget of `most` failures
    /// per `window` is used up.
    fn wait(&self, key: &K, most: u32, window: Duration) -> Option<u64> {
        let w = self.0.get(key)?;
        let elapsed = w.since.elapsed();
        (w.failures >= most && elapsed < window).then(|| (window - elapsed).as_secs().max(1))
    }

    fn add(&mut self, key: K, window: Duration) {
        if self.0.len() >= SWEEP_AT {
            self.0.retain(|_, w| w.since.elapsed() < window);
        }
        let w = self.0.entry(key).or_insert(Window {
            failures: 0,
            since: Instant::now(),
        });
        if w.since.elapsed() >= window {
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
}

impl Budgets {
    /// Whether `client` has logged in to `account` lately.
    fn knows(&self, client: IpAddr, account: &str) -> bool {
        self.known
            .get(&(client, account.to_owned()))
            .is_some_and(|at| at.elapsed() < KNOWN_FOR)
    }

    fn remember(&mut self, client: IpAddr, account: String) {
        if self.known.len() >= SWEEP_AT {
            self.known.retain(|_, at| at.elapsed() < KNOWN_FOR);
        }
        self.known.insert((client, account), Instant::now());
    }
}

/// One login attempt, counted as a failure of its client (and of its
/// account, from an address the account does not know) until
/// [`succeeded`](Self::succeeded) or [`abandoned`](Self::abandoned) says
/// otherwise.
#[must_use = "an attempt dropped without an outcome counts as a failure"]
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    client: IpAddr,
    user: String,
    /// Whether it counts against the account's budget.
    counted_on_account: bool,
}

impl LoginThrottle {
    /// Starts an attempt by `client` at `username` (compared without case),
    /// or `Err(seconds to wait)` when a budget it draws on is used up.
    pub fn begin(&self, client: IpAddr, username: &str) -> Result<LoginAttempt<'_>, u64> {
        let user = username.to_ascii_lowercase();
        let mut budgets = self.lock();
        let known = budgets.knows(client, &user);
        let account_wait = if known {
            None
        } else {
            budgets
                .accounts
                .wait(&user, MAX_ACCOUNT_FAILURES, ACCOUNT_WINDOW)
        };
        let wait = [
            budgets.clients.wait(&client, MAX_FAILURES, WINDOW),
            account_wait,
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        budgets.clients.add(client, WINDOW);
        if !known {
            budgets.accounts.add(user.clone(), ACCOUNT_WINDOW);
        }
        Ok(LoginAttempt {
            throttle: self,
            client,
            user,
            counted_on_account: !known,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Budgets> {
        // Counters updated in place: a panic cannot leave them half-written.
        self.budgets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LoginAttempt<'_> {
    /// The password was right: the attempt gives back its places, and its
    /// address becomes known to the account (never refused for others'
    /// guesses at it). Other accounts' failures, and the client's earlier
    /// ones, stay.
    pub fn succeeded(self) {
        let mut budgets = self.throttle.lock();
        budgets.clients.give_back(&self.client);
        if self.counted_on_account {
            budgets.accounts.give_back(&self.user);
        }
        budgets.remember(self.client, self.user.clone());
    }

    /// The password was never checked (the server was too busy): the
    /// attempt gives back its places.
    pub fn abandoned(self) {
        let mut budgets = self.throttle.lock();
        budgets.clients.give_back(&self.client);
        if self.counted_on_account {
            budgets.accounts.give_back(&self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n))
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
    fn guesses_from_one_address_never_refuse_the_owner_elsewhere() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES {
            drop(t.begin(ip(1), "victim").unwrap());
        }
        assert!(t.begin(ip(1), "victim").is_err(), "the guesser waits");
        t.begin(ip(2), "victim").unwrap().succeeded();
    }

    #[test]
    fn guesses_from_many_addresses_are_slowed_but_the_owners_known_address_is_not() {
        let t = LoginThrottle::default();
        t.begin(ip(99_999), "victim").unwrap().succeeded();
        for n in 0..MAX_ACCOUNT_FAILURES {
            drop(t.begin(ip(n), "VICTIM").unwrap());
        }
        assert!(
            t.begin(ip(50_000), "victim").is_err(),
            "a new address waits once the account's budget is spent"
        );
        assert!(t.begin(ip(50_000), "other").is_ok());
        t.begin(ip(99_999), "victim").unwrap().succeeded();
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
    fn an_abandoned_attempt_costs_nothing() {
        let t = LoginThrottle::default();
        for _ in 0..MAX_FAILURES * 3 {
            t.begin(ip(1), "alice").unwrap().abandoned();
        }
        assert!(t.begin(ip(1), "alice").is_ok());
    }
}
