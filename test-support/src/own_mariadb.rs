//! [`OwnMariadb`]: a private MariaDB server for the tests that must change
//! or count something server-wide (a global variable, a global status
//! counter), which the shared server of the machine never allows: another
//! deployment is busy on it.

use crate::free_addr;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A MariaDB server of the test's own: a fresh data directory in a temporary
/// directory, a free port, `root` without a password, one database
/// `datastream`. Killed and removed when dropped.
pub struct OwnMariadb {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Where Debian and most distributions install the server and its installer.
const SERVERS: [&str; 2] = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"];

impl OwnMariadb {
    /// Starts one with `options` (`--local-infile=0`) added to its command
    /// line, or returns `None` (skip) when MariaDB is not installed and
    /// `DATASTREAM_TEST_MYSQL` is unset. In CI the server must exist.
    pub fn start(options: &[&str]) -> Option<Self> {
        let Some(server) = SERVERS.into_iter().find(|p| Path::new(p).exists()) else {
            assert!(
                std::env::var("DATASTREAM_TEST_MYSQL").is_err(),
                "mariadbd is not installed but DATASTREAM_TEST_MYSQL is set"
            );
            eprintln!("skipping: mariadbd is not installed");
            return None;
        };
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let data = dir.path().join("data");
        let user = whoami();
        let status = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--user={user}"))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running mariadb-install-db");
        assert!(status.success(), "mariadb-install-db failed");
        let port = free_addr().port();
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(server)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!(
                "--socket={}",
                dir.path().join("mysqld.sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                dir.path().join("mysqld.pid").display()
            ))
            .arg(format!("--user={user}"))
            .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
            .arg(format!("--port={port}"))
            // Small and quick: a test writes a few rows.
            .args(["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M"])
            .args(options)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("starting mariadbd");
        let mut own = Self {
            child,
            port,
            _dir: dir,
        };
        own.wait_until_it_answers();
        own.sql("CREATE DATABASE datastream");
        Some(own)
    }

    fn wait_until_it_answers(&mut self) {
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port)
            .parse()
            .expect("valid address");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mariadbd exited at start ({status}); see its server.log");
            }
            assert!(Instant::now() < deadline, "mariadbd did not start in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs statements with the `mariadb` client as root.
    pub fn sql(&self, statements: &str) {
        let status = Command::new("mariadb")
            .args(["--no-defaults", "-h127.0.0.1", "-uroot"])
            .arg(format!("-P{}", self.port))
            .args(["-e", statements])
            .status()
            .expect("running the mariadb client");
        assert!(status.success(), "`{statements}` failed");
    }

    /// `mysql://root@127.0.0.1:PORT`, the whole server.
    pub fn server_url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// `mysql://root@127.0.0.1:PORT/datastream`, its one database.
    pub fn url(&self) -> String {
        format!("{}/datastream", self.server_url())
    }
}

impl Drop for OwnMariadb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The user this process runs as, for `--user` (the server refuses to run as
/// root unless told so).
fn whoami() -> String {
    Command::new("id")
        .arg("-un")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "root".to_owned())
}
