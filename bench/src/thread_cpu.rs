//! CPU time of this process's threads, read from `/proc/self/task` (Linux
//! only): what a benchmark uses to say how much of a core a part costs.

use anyhow::{Context, Result};
use std::time::Duration;

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux this runs on.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// User + system CPU time of thread `tid` of this process.
pub fn thread_cpu(tid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    stat_cpu(&stat)
}

/// User + system CPU time of every thread of this process whose name starts
/// with `prefix` (names are cut to 15 bytes: actix-web's workers are
/// `actix-server wo…`). `None` where `/proc` is not there to read.
pub fn threads_cpu(prefix: &str) -> Option<Duration> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        let path = task.path();
        let named =
            std::fs::read_to_string(path.join("comm")).is_ok_and(|comm| comm.starts_with(prefix));
        if !named {
            continue;
        }
        // A thread that ended between listing and reading adds nothing.
        if let Ok(cpu) = std::fs::read_to_string(path.join("stat"))
            .map_err(anyhow::Error::from)
            .and_then(|s| stat_cpu(&s))
        {
            total += cpu;
        }
    }
    Some(total)
}

/// User + system CPU time in a `/proc/…/stat` line.
pub(crate) fn stat_cpu(stat: &str) -> Result<Duration> {
    // Fields after the command name (which is in parentheses and may hold
    // spaces): utime and stime are the 12th and 13th.
    stat_ticks(stat, 11)
}

/// User + system CPU time of the waited-for children in a `/proc/…/stat`
/// line (cutime and cstime, the 14th and 15th fields after the name).
pub(crate) fn stat_children_cpu(stat: &str) -> Result<Duration> {
    stat_ticks(stat, 13)
}

/// The sum of the two tick counts at `first` and `first + 1` after the
/// command name, as time.
fn stat_ticks(stat: &str, first: usize) -> Result<Duration> {
    let after = stat.rsplit_once(')').context("parsing /proc stat")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        Ok(fields.get(i).context("short /proc stat")?.parse::<u64>()?)
    };
    let total = ticks(first)? + ticks(first + 1)?;
    Ok(Duration::from_secs_f64(total as f64 / CLOCK_TICKS_PER_SEC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_utime_plus_stime_even_when_the_name_holds_spaces() {
        let stat = "42 (actix-server wo) S 1 2 3 4 5 6 7 8 9 10 150 50 300 100 20 0";
        assert_eq!(stat_cpu(stat).unwrap(), Duration::from_secs(2));
        assert_eq!(stat_children_cpu(stat).unwrap(), Duration::from_secs(4));
    }

    #[test]
    fn a_busy_threads_cpu_is_counted_under_its_name() {
        let busy = std::thread::Builder::new()
            .name("cpu-probe-thread".into())
            .spawn(|| {
                let started = std::time::Instant::now();
                let mut spins = 0u64;
                // Spin until the kernel has charged a tick to this thread.
                while started.elapsed() < Duration::from_secs(5) {
                    spins = std::hint::black_box(spins + 1);
                    if spins.is_multiple_of(1_000_000)
                        && threads_cpu("cpu-probe-thr") > Some(Duration::ZERO)
                    {
                        break;
                    }
                }
                threads_cpu("cpu-probe-thr")
            })
            .unwrap();
        let charged = busy.join().unwrap().expect("/proc/self/task is readable");
        assert!(charged > Duration::ZERO);
        assert_eq!(threads_cpu("no-such-thread"), Some(Duration::ZERO));
    }
}
