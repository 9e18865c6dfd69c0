//! `bench query`'s analytics shapes: aggregates, the device catalog and the
//! streamed export, each beside what the database itself does with the same
//! question in the same run (a plain `GROUP BY`, and `mariadb --batch` for
//! the export's rows) where the database is MariaDB.

use super::timing::{enc, time_http, timing};
use super::{
    BenchApi, QueryBench, Timing, API_THREADS, DEVICES, ID1, MIN_REQUESTS_FOR_CPU, SPAN_DAYS, TYPES,
};
use crate::figures::median;
use crate::mariadb_cli::{count_lines, sql_time, MariadbCli};
use crate::thread_cpu::threads_cpu;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use datastream_domain::timestamp::format_timestamp;
use datastream_store::SharedStore;
use rand::Rng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Times a plain `GROUP BY` takes: it runs for seconds.
const GROUP_BY_RUNS: usize = 3;
/// Times each export is run, alternating with its baseline.
const EXPORT_RUNS: usize = 3;
/// Requests of a shape's one-client series.
const ONE_CLIENT_REQUESTS: usize = 2_000;

/// What the analytics shapes measured.
#[derive(Debug, Clone)]
pub struct AnalyticsReport {
    /// How long the refresher took to rebuild the hours left dirty by the
    /// load (0 when a previous run had built them).
    pub rollup_build: Duration,
    /// Hours it rebuilt.
    pub rollup_hours: usize,
    /// One sensor type, all devices, 30 days, hourly, grouped by type.
    pub type_hourly: Timing,
    /// The same question as a plain `GROUP BY` on MariaDB.
    pub group_by: Option<Timing>,
    /// One device, 30 days, automatic interval.
    pub device_auto: ShapeLoad,
    /// `/devices`, every device.
    pub devices: ShapeLoad,
    /// The CSV export of a tenth of the table.
    pub export: ExportResult,
}

/// A shape timed with every client and with one: the difference is time
/// spent queued behind other requests for the machine's cores.
#[derive(Debug, Clone)]
pub struct ShapeLoad {
    /// With the benchmark's clients.
    pub all_clients: Timing,
    /// With one client, nothing else asking.
    pub one_client: Timing,
    /// The API's CPU time per request, from the run with every client.
    pub api_cpu: Option<Duration>,
}

/// The export's figures.
#[derive(Debug, Clone)]
pub struct ExportResult {
    /// Rows in the exported file.
    pub rows: u64,
    /// Through the API, rows per second (mean of the runs).
    pub api_rows_per_sec: f64,
    /// `mariadb --batch --quick` on the same rows, read through the same
    /// index as the API's pages.
    pub baseline_rows_per_sec: Option<f64>,
    /// API ÷ baseline of each run (each run times both, alternating).
    pub ratios: Vec<f64>,
    /// The index each side reads through, from `EXPLAIN`: the baseline's
    /// statement and a page of the API's export.
    pub plans: Option<(String, String)>,
    /// Growth of the process's resident memory during the export, bytes.
    pub rss_growth: Option<u64>,
}

/// Runs the analytics shapes against `api`.
pub(super) async fn run(
    store: &SharedStore,
    api: &BenchApi,
    bench: &QueryBench,
    span_end: DateTime<Utc>,
) -> Result<AnalyticsReport> {
    let (rollup_build, rollup_hours) = build_rollups(store).await?;
    let span_start = span_end - ChronoDuration::days(SPAN_DAYS);
    let window = format!(
        "from={}&to={}",
        enc(&format_timestamp(span_start)),
        enc(&format_timestamp(span_end))
    );
    let cli = MariadbCli::for_url(&bench.database_url);

    eprintln!("timing: one sensor type, 30 days, hourly");
    let by_type = window.clone();
    let type_hourly = time_warm(api, bench, "/api/v1/readings/aggregate", move || {
        let t = TYPES[rand::rng().random_range(0..TYPES.len())];
        format!("sensor_type={t}&{by_type}&interval=1h&group_by=sensor_type")
    })
    .await?;
    let group_by = match &cli {
        Some(cli) => {
            eprintln!("timing: the same as a plain GROUP BY on MariaDB ({GROUP_BY_RUNS} runs)");
            Some(cli.time_group_by(span_start, span_end)?)
        }
        None => None,
    };

    eprintln!("timing: one device, 30 days, automatic interval");
    let by_device = window.clone();
    let device_auto = time_load(api, bench, "/api/v1/readings/aggregate", move || {
        let id2 = rand::rng().random_range(0..DEVICES);
        format!("id1={ID1}&id2={id2}&{by_device}")
    })
    .await?;

    eprintln!("timing: /devices");
    let devices = time_load(api, bench, "/api/v1/devices", String::new).await?;

    let export = time_export(api, cli.as_ref(), span_end).await?;
    Ok(AnalyticsReport {
        rollup_build,
        rollup_hours,
        type_hourly,
        group_by,
        device_auto,
        devices,
        export,
    })
}

/// Rebuilds the dirty hours, as the ingestor's refresher would, until none
/// is left or none has become ready for 20 s (an hour is rebuilt once it
/// has ended and its first mark is 10 s old).
async fn build_rollups(store: &SharedStore) -> Result<(Duration, usize)> {
    let started = Instant::now();
    let mut hours = 0;
    let mut last_progress = Instant::now();
    while store.dirty_hours(Utc::now()).await? > 0
        && last_progress.elapsed() < Duration::from_secs(20)
    {
        let n = store.refresh_rollups(Utc::now(), 64).await?;
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        hours += n;
        last_progress = Instant::now();
        eprint!("\rbuilding rollups: {hours} hours");
    }
    if hours > 0 {
        eprintln!(" in {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok((started.elapsed(), hours))
}

/// Times a shape after an untimed warm-up, like the reading shapes.
async fn time_warm(
    api: &BenchApi,
    bench: &QueryBench,
    path: &str,
    make_query: impl Fn() -> String + Send + Sync + 'static,
) -> Result<Timing> {
    let warm_up = QueryBench {
        requests: warm_up_requests(bench),
        ..bench.clone()
    };
    let addr = api.server.addr();
    time_http(addr, &api.token, &warm_up, path, &make_query).await?;
    time_http(addr, &api.token, bench, path, &make_query).await
}

/// Times a shape with every client (counting the API's CPU time), then
/// with one.
async fn time_load(
    api: &BenchApi,
    bench: &QueryBench,
    path: &str,
    make_query: impl Fn() -> String + Send + Sync + Clone + 'static,
) -> Result<ShapeLoad> {
    let cpu_before = threads_cpu(API_THREADS);
    let all_clients = time_warm(api, bench, path, make_query.clone()).await?;
    // The warm-up's requests are counted too: they are the same shape.
    let sent = bench.requests + warm_up_requests(bench);
    let api_cpu = cpu_before
        .zip(threads_cpu(API_THREADS))
        .filter(|_| sent >= MIN_REQUESTS_FOR_CPU)
        .map(|(before, after)| after.saturating_sub(before) / sent as u32);
    let alone = QueryBench {
        clients: 1,
        requests: ONE_CLIENT_REQUESTS.min(bench.requests),
        ..bench.clone()
    };
    let one_client = time_http(api.server.addr(), &api.token, &alone, path, &make_query).await?;
    Ok(ShapeLoad {
        all_clients,
        one_client,
        api_cpu,
    })
}

/// Untimed requests sent before a shape is timed.
fn warm_up_requests(bench: &QueryBench) -> usize {
    (bench.requests / 10).min(1_000).max(bench.clients)
}

/// The CSV export of the last tenth of the span (a tenth of the table),
/// alternating with `mariadb --batch` on the same rows.
async fn time_export(
    api: &BenchApi,
    cli: Option<&MariadbCli>,
    span_end: DateTime<Utc>,
) -> Result<ExportResult> {
    let from = span_end - ChronoDuration::days(SPAN_DAYS) / 10;
    let url = format!(
        "http://{}/api/v1/readings/export?id1={ID1}&from={}&to={}&format=csv",
        api.server.addr(),
        enc(&format_timestamp(from)),
        enc(&format_timestamp(span_end))
    );
    let (mut api_rates, mut baseline_rates, mut rows, mut rss_growth) =
        (Vec::new(), Vec::new(), 0, None);
    let mut ratios = Vec::new();
    for run in 1..=EXPORT_RUNS {
        eprintln!("timing: export as CSV, run {run} of {EXPORT_RUNS}");
        let token = format!("Bearer {}", api.token);
        let url = url.clone();
        let (n, took, growth) =
            tokio::task::spawn_blocking(move || export_once(&url, &token)).await??;
        rows = n;
        let api_rate = n as f64 / took.as_secs_f64();
        api_rates.push(api_rate);
        rss_growth = rss_growth.max(growth);
        if let Some(cli) = cli {
            let (n, took) = cli.time_rows(from, span_end)?;
            if n != rows {
                bail!("mariadb --batch returned {n} rows, the export {rows}");
            }
            let baseline = n as f64 / took.as_secs_f64();
            baseline_rates.push(baseline);
            ratios.push(api_rate / baseline);
        }
    }
    let plans = match cli {
        Some(cli) => Some(cli.export_plans(from, span_end)?),
        None => None,
    };
    Ok(ExportResult {
        rows,
        api_rows_per_sec: median(api_rates),
        baseline_rows_per_sec: (!baseline_rates.is_empty()).then(|| median(baseline_rates)),
        ratios,
        plans,
        rss_growth,
    })
}

/// One export read to the end: its rows, how long it took, and how far the
/// process's resident memory rose meanwhile (sampled every 10 ms).
fn export_once(url: &str, authorization: &str) -> Result<(u64, Duration, Option<u64>)> {
    let before = resident_bytes();
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(before.unwrap_or(0)));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(now) = resident_bytes() {
                    peak.fetch_max(now, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(url)
        .header("Authorization", authorization)
        .call()
        .with_context(|| format!("GET {url}"))?;
    if resp.status() != 200 {
        bail!("{url} answered {}", resp.status());
    }
    let lines = count_lines(resp.body_mut().with_config().limit(u64::MAX).reader())?;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let growth = before.map(|b| peak.load(Ordering::Relaxed).saturating_sub(b));
    Ok((lines.saturating_sub(1), took, growth))
}

/// The index the export's baseline is told to read through: the one the
/// API's pages walk (`ORDER BY timestamp, id` with a limit).
const EXPORT_INDEX: &str = "idx_sensor_data_timestamp";

/// The export's rows between `from` and `to` in its order, through `index`
/// when one is named, with `tail` (a limit) appended.
fn export_rows_sql(from: DateTime<Utc>, to: DateTime<Utc>, index: &str, tail: &str) -> String {
    let force = if index.is_empty() {
        String::new()
    } else {
        format!(" FORCE INDEX ({index})")
    };
    format!(
        "SELECT id, sensor_value, sensor_type, id1, id2, `timestamp`, created_at, updated_at \
         FROM sensor_data{force} WHERE id1 = '{ID1}' AND `timestamp` >= '{}' AND `timestamp` < '{}' \
         ORDER BY `timestamp`, id{tail}",
        sql_time(from),
        sql_time(to)
    )
}

/// The `key` column of `EXPLAIN`'s first row, as `mariadb --batch` prints
/// it (tab-separated, a header first).
fn explained_key(output: &str) -> Option<String> {
    let mut lines = output.lines();
    let header: Vec<&str> = lines.next()?.split('\t').collect();
    let column = header.iter().position(|h| *h == "key")?;
    let row: Vec<&str> = lines.next()?.split('\t').collect();
    row.get(column).map(|k| (*k).to_owned())
}

/// This process's resident memory (VmRSS), on Linux.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

impl MariadbCli {
    /// The type-hourly question as a plain `GROUP BY`, a random type per
    /// run.
    fn time_group_by(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Timing> {
        let started = Instant::now();
        let mut latencies = Vec::new();
        for _ in 0..GROUP_BY_RUNS {
            let t = TYPES[rand::rng().random_range(0..TYPES.len())];
            let sql = format!(
                "SET time_zone = '+00:00'; \
                 SELECT FLOOR(UNIX_TIMESTAMP(`timestamp`) / 3600) AS hour, sensor_type, \
                 COUNT(*), MIN(sensor_value), MAX(sensor_value), AVG(sensor_value), SUM(sensor_value) \
                 FROM sensor_data WHERE sensor_type = '{t}' AND `timestamp` >= '{}' AND `timestamp` < '{}' \
                 GROUP BY hour, sensor_type",
                sql_time(from),
                sql_time(to)
            );
            latencies.push(self.run(&sql)?.1);
        }
        Ok(timing(latencies, started.elapsed()))
    }

    /// The export's rows, as `mariadb --batch --quick` prints them, read
    /// in the export's order through the timestamp index, as the API's
    /// pages are ([`MariadbCli::export_plans`] shows both plans). Left to
    /// itself, MariaDB scans the whole table and sorts it for this
    /// statement: a baseline that slow flatters the API.
    fn time_rows(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(u64, Duration)> {
        let (lines, took) = self.run(&export_rows_sql(from, to, EXPORT_INDEX, ""))?;
        Ok((lines.saturating_sub(1), took))
    }

    /// The index the baseline reads through, and the one a page of the
    /// API's export reads through (its statement's shape: the same
    /// conditions, a page's limit), from `EXPLAIN`.
    fn export_plans(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(String, String)> {
        let page = format!(" LIMIT {}", datastream_domain::filter::MAX_LIMIT);
        let key = |sql: String| -> Result<String> {
            let out = self.output(&format!("EXPLAIN {sql}"))?;
            Ok(explained_key(&out).unwrap_or_else(|| "(none)".to_owned()))
        };
        Ok((
            key(export_rows_sql(from, to, EXPORT_INDEX, ""))?,
            key(export_rows_sql(from, to, "", &page))?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::explained_key;

    #[test]
    fn the_key_is_read_from_explains_first_row() {
        let out = "id\tselect_type\ttable\ttype\tpossible_keys\tkey\tkey_len\tref\trows\tExtra\n\
                   1\tSIMPLE\tsensor_data\trange\tidx_sensor_data_timestamp\tidx_sensor_data_timestamp\t7\tNULL\t1000\tUsing where\n";
        assert_eq!(
            explained_key(out).as_deref(),
            Some("idx_sensor_data_timestamp")
        );
        assert_eq!(explained_key("nothing"), None);
    }
}
