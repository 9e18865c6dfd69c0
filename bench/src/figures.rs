//! What every benchmark reports beside its figures — the machine's load
//! and each process's CPU time — the moment a round's readings have all
//! landed, and the order statistics of its rounds.

use datastream_domain::ReadingFilter;
use datastream_store::SharedStore;
use std::time::{Duration, Instant};

/// Waits until `total` readings matching `filter` are stored, counting
/// them every `poll`; when the last was counted. Fails after `timeout`,
/// saying how many had landed.
pub async fn wait_until_landed(
    store: &SharedStore,
    filter: &ReadingFilter,
    total: u64,
    timeout: Duration,
    poll: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let stored = store.count(filter).await?;
        if stored >= total {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {stored} of {total} readings landed within {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(poll).await;
    }
}

/// User + system CPU seconds of process `pid` (0 where `/proc` is absent).
pub fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| crate::thread_cpu::stat_cpu(&stat).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// User + system CPU seconds of this process's children that have ended
/// and been waited for (0 where `/proc` is absent): around a child's run,
/// the difference is that child's CPU time.
pub fn ended_children_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| crate::thread_cpu::stat_children_cpu(&stat).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The database server's process when it runs on this machine (a process
/// named `mariadbd` or `mysqld`), for its CPU time.
pub fn database_server_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            matches!(comm.trim(), "mariadbd" | "mysqld").then_some(pid)
        })
}

/// The process on this machine listening on TCP `port` (a broker, say),
/// for its CPU time: the listening socket's inode from `/proc/net/tcp`
/// and `tcp6`, then the process holding it. `None` where `/proc` is absent
/// or the process is another user's.
pub fn listening_process(port: u16) -> Option<u32> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    // local_address is ADDR:PORT in hex; state 0A is LISTEN.
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    let listening = *fields.get(3)? == "0A";
                    (listening && u16::from_str_radix(local_port, 16).ok()? == port)
                        .then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    if inodes.is_empty() {
        return None;
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let holds = std::fs::read_dir(entry.path().join("fd"))
                .ok()?
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()));
            holds.then_some(pid)
        })
}

/// Waits until process `pid` has used under 5 % of a core over half a
/// second: a database done with the work of the figure before, so that it
/// is not charged to the next. At most 5 s: a server busy with other
/// databases is never idle, and its own flushing is over by then.
pub async fn wait_until_idle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let window = Duration::from_millis(500);
    while Instant::now() < deadline {
        let before = cpu_seconds(pid);
        tokio::time::sleep(window).await;
        if cpu_seconds(pid) - before < 0.05 * window.as_secs_f64() {
            return;
        }
    }
}

/// The 1-minute load average (0 where `/proc` is absent).
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The `p` quantile (0 to 1) of `sorted`, nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The median of `values`.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5)
}

/// The median of `values`, or `None` when there are none.
pub fn median_if_any(values: Vec<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| median(values))
}

/// The smallest and largest of `values`.
pub fn range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// `values` as `median (low–high)` with `decimals` decimals; `—` when
/// there are none.
pub fn median_and_range(values: &[f64], decimals: usize) -> String {
    if values.is_empty() {
        return "—".to_owned();
    }
    let (low, high) = range(values);
    format!(
        "{:.decimals$} ({low:.decimals$}–{high:.decimals$})",
        median(values.to_vec())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_listening_on_a_port_is_found_by_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert_eq!(listening_process(port), Some(std::process::id()));
        drop(listener);
        assert_eq!(listening_process(port), None);
    }
}
