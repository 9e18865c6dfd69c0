//! The `mariadb` command-line client, for baselines that run the same
//! question straight on the database, as a user of the database would.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `mariadb` command-line client on the benchmark's database.
pub(crate) struct MariadbCli {
    host: String,
    port: String,
    user: String,
    password: Option<String>,
    database: String,
}

impl MariadbCli {
    /// For a `mysql://user[:password]@host[:port]/database` URL, when the
    /// `mariadb` client is installed.
    pub(crate) fn for_url(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("mysql://")?;
        let (userinfo, hostpart) = rest.rsplit_once('@')?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (u, Some(p.to_owned())),
            None => (userinfo, None),
        };
        let (hostport, database) = hostpart.split_once('/')?;
        let database = database.split('?').next()?.to_owned();
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
        let installed = Command::new("mariadb")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        installed.then(|| Self {
            host: host.to_owned(),
            port: port.to_owned(),
            user: user.to_owned(),
            password,
            database,
        })
    }

    /// Runs `sql` with `--batch --quick`; returns the lines it printed
    /// (header included) and how long it took, output read to the end.
    pub(crate) fn run(&self, sql: &str) -> Result<(u64, Duration)> {
        let started = Instant::now();
        let mut child = self.command(sql).spawn().context("running mariadb")?;
        let stdout = child.stdout.take().context("mariadb's output")?;
        let lines = count_lines(stdout)?;
        let status = child.wait()?;
        if !status.success() {
            bail!("mariadb failed ({status}) on: {sql}");
        }
        Ok((lines, started.elapsed()))
    }

    /// Runs `sql` and returns what it printed (for short answers such as
    /// `EXPLAIN`).
    pub(crate) fn output(&self, sql: &str) -> Result<String> {
        let out = self.command(sql).output().context("running mariadb")?;
        if !out.status.success() {
            bail!("mariadb failed ({}) on: {sql}", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The client, on the benchmark's database, about to run `sql`.
    fn command(&self, sql: &str) -> Command {
        let mut command = Command::new("mariadb");
        command
            .args([
                "--batch",
                // Rows are printed as they come, not gathered in the
                // client's memory first (as the API streams its export).
                "--quick",
                // The client refuses LOAD DATA LOCAL unless asked.
                "--local-infile=1",
                "-h",
                &self.host,
                "-P",
                &self.port,
                "-u",
                &self.user,
            ])
            .arg(&self.database)
            .args(["-e", sql])
            .stdout(Stdio::piped());
        if let Some(p) = &self.password {
            command.env("MYSQL_PWD", p);
        }
        command
    }
}

/// Newlines in everything `reader` gives, read in 64 KiB pieces.
pub(crate) fn count_lines(mut reader: impl Read) -> Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0u64;
    loop {
        let n = reader.read(&mut buf).context("reading mariadb's output")?;
        if n == 0 {
            return Ok(lines);
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

/// A UTC instant as a MySQL DATETIME literal (the store keeps UTC).
pub(crate) fn sql_time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}
