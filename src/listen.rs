//! `ListenAddr`: where a service listens, and whether the user chose it.
//!
//! `datastream up` is the front door, and the machines it is tried on often
//! run Mosquitto on 1883 and something on 8080 already. A default address is
//! therefore a preference: when its port is taken, `up` moves to the next
//! free port and says so. An address the user set (file, environment or
//! flag) is a requirement: a taken port stops the start with a message that
//! names the setting.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::net::{SocketAddr, TcpListener};

/// Ports after a taken default that `up` tries before giving up.
pub const FALLBACK_PORTS: u16 = 100;

/// A listen address, and whether the user chose it or it is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(from = "SocketAddr")]
pub struct ListenAddr {
    addr: SocketAddr,
    chosen: bool,
}

impl ListenAddr {
    /// A built-in default: `up` may move to another port when it is taken.
    pub const fn default_for(addr: SocketAddr) -> Self {
        Self {
            addr,
            chosen: false,
        }
    }

    /// An address the user set: it must be free.
    pub const fn chosen(addr: SocketAddr) -> Self {
        Self { addr, chosen: true }
    }

    /// The address asked for.
    pub fn addr(self) -> SocketAddr {
        self.addr
    }

    /// Whether the user set it (rather than leaving the default).
    pub fn is_chosen(self) -> bool {
        self.chosen
    }

    /// The addresses to try, in order: this one and, for a default, the
    /// next [`FALLBACK_PORTS`] ports on the same host. Port 0 (any free
    /// port) never needs a second try.
    pub fn candidates(self) -> impl Iterator<Item = SocketAddr> {
        let tries = if self.chosen || self.addr.port() == 0 {
            0
        } else {
            FALLBACK_PORTS
        };
        (0..=tries).filter_map(move |step| {
            let port = self.addr.port().checked_add(step)?;
            Some(SocketAddr::new(self.addr.ip(), port))
        })
    }

    /// Binds a TCP listener here (see the module docs): a chosen address
    /// must be free; a taken default moves to the next free port, with a
    /// warning naming `setting`, the busy port and the one taken instead.
    pub fn bind(self, setting: &str) -> Result<TcpListener> {
        self.first_free(setting, |addr| match TcpListener::bind(addr) {
            Ok(listener) => Ok(Some(listener)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(None),
            Err(e) => Err(e).with_context(|| format!("listening on {addr}")),
        })
    }

    /// Tries `start` on each candidate address until one starts: `Ok(None)`
    /// means the address is taken. Warns when a default moved; fails with a
    /// message naming `setting` when the address was chosen, or every
    /// candidate is taken.
    pub fn first_free<T>(
        self,
        setting: &str,
        mut start: impl FnMut(SocketAddr) -> Result<Option<T>>,
    ) -> Result<T> {
        for addr in self.candidates() {
            if let Some(started) = start(addr)? {
                if addr != self.addr {
                    tracing::warn!(
                        setting,
                        busy = %self.addr,
                        chosen = %addr,
                        "the default {} is in use; listening on {} instead (set {setting} to choose)",
                        self.addr,
                        addr
                    );
                }
                return Ok(started);
            }
        }
        if self.chosen || self.addr.port() == 0 {
            bail!(
                "{} is already in use; choose another address with {setting}",
                self.addr
            );
        }
        bail!(
            "{} and the next {FALLBACK_PORTS} ports are all in use; choose an address with {setting}",
            self.addr
        )
    }
}

impl From<SocketAddr> for ListenAddr {
    /// An address read from a file, the environment or a flag: chosen.
    fn from(addr: SocketAddr) -> Self {
        Self::chosen(addr)
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.addr.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    #[test]
    fn a_taken_default_moves_to_a_later_free_port() {
        let (_held, addr) = held();
        let listener = ListenAddr::default_for(addr).bind("API_LISTEN").unwrap();
        let got = listener.local_addr().unwrap();
        assert_eq!(got.ip(), addr.ip());
        assert!(got.port() > addr.port() && got.port() <= addr.port() + FALLBACK_PORTS);
    }

    #[test]
    fn a_free_default_is_used_as_it_is() {
        let (held, addr) = held();
        drop(held);
        let listener = ListenAddr::default_for(addr).bind("API_LISTEN").unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr);
    }

    #[test]
    fn a_taken_chosen_address_is_an_error_naming_the_setting() {
        let (_held, addr) = held();
        let error = ListenAddr::chosen(addr).bind("API_LISTEN").unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{addr} is already in use; choose another address with API_LISTEN")
        );
    }

    #[test]
    fn addresses_from_settings_count_as_chosen() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert!(ListenAddr::from(addr).is_chosen());
        assert!(!ListenAddr::default_for(addr).is_chosen());
    }

    #[test]
    fn candidates_stop_at_the_last_port() {
        let addr: SocketAddr = "127.0.0.1:65534".parse().unwrap();
        assert_eq!(ListenAddr::default_for(addr).candidates().count(), 2);
    }
}
