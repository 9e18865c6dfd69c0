//! `datastream bench query`: read latency and throughput over HTTP through
//! the real API, against the same queries run straight on the store.
//!
//! It loads `rows` readings (1,000 devices over the last 30 days; reused by
//! later runs) into the configured database, starts the API in-process on a
//! free port, and times five query shapes with `clients` concurrent
//! keep-alive connections. Each shape is warmed up first (untimed), so
//! the figures describe a running service, not its first connections.
//! Page 1 and the deep page by cursor are then timed once more together,
//! every client alternating between them, for the cursor's ratio: two
//! shapes timed minutes apart on a shared machine differ by its drift.

use super::thread_cpu::threads_cpu;
use crate::settings::Settings;
use crate::system::open_store;
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use datastream_api::AppState;
use datastream_http::{DatabaseReadiness, HealthState};
use datastream_schema::timestamp::format_timestamp;
use datastream_schema::{
    FilterParams, Id1, Id2, PageCursor, Reading, ReadingFilter, Role, SensorType, SharedStore,
    StoreError, TimestampBounds, Username,
};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const ID1: &str = "QUERYBENCH";
const DEVICES: u64 = 1_000;
const TYPES: [&str; 4] = ["temperature", "humidity", "pressure", "co2"];
const SPAN_DAYS: i64 = 30;
/// actix-web names its worker threads `actix-server worker N`.
const API_THREADS: &str = "actix-server";
/// Fewest requests over which CPU time per request is reported.
const MIN_REQUESTS_FOR_CPU: usize = 100;

/// Makes the query string of one request of a shape (random device, window…).
type QueryMaker = Arc<dyn Fn() -> String + Send + Sync>;

/// One query shape the benchmark times.
struct Shape {
    /// As the report names it.
    name: String,
    /// Each request's query string.
    query: QueryMaker,
    /// Takes seconds per request (the deep offset page): timed with a few
    /// requests from one client, unwarmed; sixteen at once would exhaust
    /// the connection pool.
    slow: bool,
}

impl Shape {
    fn new(name: impl Into<String>, query: QueryMaker) -> Self {
        Self {
            name: name.into(),
            query,
            slow: false,
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct QueryBench {
    /// Readings in the table for the benchmark's device family.
    pub rows: u64,
    /// Concurrent clients.
    pub clients: usize,
    /// Requests per query shape.
    pub requests: usize,
    /// The API's worker threads (`API_WORKERS`).
    pub api_workers: usize,
    /// Database connections (`DATABASE_POOL_SIZE`; `None`: the default).
    pub pool_size: Option<usize>,
    /// The deep page compared with page 1, by cursor and by offset (10,000
    /// for the issue's figures; the table needs 100 rows per page).
    pub deep_page: u32,
}

impl QueryBench {
    /// The deep page, at least 2 (page 1 is the baseline it is compared to).
    fn deep_page(&self) -> u32 {
        self.deep_page.max(2)
    }

    /// Requests of each of page 1 and the deep cursor page when they are
    /// timed together: half the usual, so the pair takes about as long as
    /// one shape.
    fn interleaved_requests(&self) -> usize {
        (self.requests / 2).max(self.clients)
    }
}

/// One query shape's figures.
#[derive(Debug, Clone)]
pub struct ShapeResult {
    /// What was asked.
    pub name: String,
    /// Over HTTP through the API.
    pub api: Timing,
    /// The same filter straight on the store.
    pub sql: Timing,
    /// CPU time the API's workers spent per request over HTTP (None where
    /// `/proc` cannot be read).
    pub api_cpu: Option<Duration>,
}

/// Everything `bench query` measured.
#[derive(Debug, Clone)]
pub struct QueryReport {
    /// Each shape, timed alone.
    pub shapes: Vec<ShapeResult>,
    /// Page 1 and the deep page by cursor timed together, each client
    /// alternating between them: the ratio of their p50s is the cursor
    /// target's figure, free of the machine's drift between shapes timed one
    /// after the other.
    pub interleaved: (Timing, Timing),
}

/// Latency and throughput of one series.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Requests per second with all clients.
    pub per_sec: f64,
}

/// Runs the benchmark.
pub async fn run(settings: &Settings, bench: &QueryBench) -> Result<QueryReport> {
    let store = open_store(settings).await?;
    let span_end = load(&store, bench.rows).await?;

    // The API in-process, on a free port, with a token for a bench admin
    // that cannot log in (its hash is no valid PHC string).
    let secret: String =
        rand::distr::SampleString::sample_string(&rand::distr::Alphanumeric, &mut rand::rng(), 48);
    let state = AppState::new(store.clone(), secret.as_bytes(), Duration::from_secs(3600))?;
    let admin = Username::parse("query-bench")?;
    match store.create_user(&admin, "!", Role::Admin).await {
        Ok(()) | Err(StoreError::Conflict) => {}
        Err(e) => return Err(e.into()),
    }
    let admin = store
        .find_user(&admin)
        .await?
        .context("the bench admin was just created")?;
    let token = state.tokens.issue(&admin);
    let cursors = state.cursors.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let stop = CancellationToken::new();
    let health = HealthState {
        prometheus: datastream_http::telemetry::prometheus(),
        readiness: Arc::new(DatabaseReadiness(store.clone())),
    };
    let server = datastream_api::start(listener, state, health, bench.api_workers, stop.clone())?;
    let addr = server.addr();

    // The deep page by cursor starts after the last row of the page before.
    let deep_page = bench.deep_page();
    let page_before = (deep_page - 1).to_string();
    let deep = store
        .query(&filter(FilterParams {
            limit: Some("100"),
            page: Some(&page_before),
            ..Default::default()
        })?)
        .await?;
    let Some(last) = deep.last() else {
        let rows_needed = u64::from(deep_page) * 100;
        bail!(
            "fewer than {rows_needed} rows: page {} does not exist; use --rows {rows_needed} or more, or a smaller --deep-page",
            page_label(deep_page)
        );
    };
    let deep_cursor = cursors.encode(
        PageCursor {
            timestamp: last.timestamp,
            id: last.id,
        },
        datastream_schema::Order::Desc,
    );

    let page_1: QueryMaker = Arc::new(|| "limit=100".to_owned());
    let deep_by_cursor: QueryMaker = Arc::new(move || format!("limit=100&cursor={deep_cursor}"));
    let shapes = [
        Shape::new(
            "latest 100 of one device",
            Arc::new(|| {
                let id2 = rand::rng().random_range(0..DEVICES);
                format!("id1={ID1}&id2={id2}&limit=100")
            }),
        ),
        Shape::new(
            "one-hour window of one sensor type",
            Arc::new(move || {
                let mut rng = rand::rng();
                let hours_back = rng.random_range(1..SPAN_DAYS * 24);
                let to = span_end - ChronoDuration::hours(hours_back);
                let from = to - ChronoDuration::hours(1);
                let t = TYPES[rng.random_range(0..TYPES.len())];
                format!(
                    "sensor_type={t}&from={}&to={}&limit=100",
                    enc(&format_timestamp(from)),
                    enc(&format_timestamp(to))
                )
            }),
        ),
        Shape::new(PAGE_1, page_1.clone()),
        Shape::new(
            format!("page {} by cursor", page_label(deep_page)),
            deep_by_cursor.clone(),
        ),
        Shape {
            slow: true,
            ..Shape::new(
                format!("page {} by offset", page_label(deep_page)),
                Arc::new(move || format!("limit=100&page={deep_page}")),
            )
        },
    ];

    let mut results = Vec::new();
    for shape in &shapes {
        eprintln!("timing: {}", shape.name);
        let make_query: &(dyn Fn() -> String + Send + Sync) = shape.query.as_ref();
        let shape_bench = if shape.slow {
            QueryBench {
                clients: 1,
                requests: 3,
                ..bench.clone()
            }
        } else {
            bench.clone()
        };
        let warm_up = QueryBench {
            requests: (shape_bench.requests / 10)
                .min(1_000)
                .max(shape_bench.clients),
            ..shape_bench.clone()
        };
        if !shape.slow {
            time_http(addr, &token, &warm_up, make_query).await?;
        }
        let cpu_before = threads_cpu(API_THREADS);
        let api = time_http(addr, &token, &shape_bench, make_query).await?;
        // CPU time is counted in 10 ms ticks: a per-request figure needs
        // enough requests (a slow shape's three are not).
        let api_cpu = cpu_before
            .zip(threads_cpu(API_THREADS))
            .filter(|_| shape_bench.requests >= MIN_REQUESTS_FOR_CPU)
            .map(|(before, after)| after.saturating_sub(before) / shape_bench.requests as u32);
        if !shape.slow {
            time_store(&store, &cursors, &warm_up, make_query).await?;
        }
        let sql = time_store(&store, &cursors, &shape_bench, make_query).await?;
        results.push(ShapeResult {
            name: shape.name.clone(),
            api,
            sql,
            api_cpu,
        });
    }

    eprintln!(
        "timing: {PAGE_1} and page {} by cursor, interleaved",
        page_label(deep_page)
    );
    let pair_bench = QueryBench {
        requests: bench.interleaved_requests(),
        ..bench.clone()
    };
    let interleaved = time_http_interleaved(
        addr,
        &token,
        &pair_bench,
        page_1.as_ref(),
        deep_by_cursor.as_ref(),
    )
    .await?;
    stop.cancel();
    server.wait().await?;
    Ok(QueryReport {
        shapes: results,
        interleaved,
    })
}

/// Makes sure `rows` bench readings exist; returns the end of their span.
async fn load(store: &SharedStore, rows: u64) -> Result<DateTime<Utc>> {
    let end = Utc::now().duration_trunc(ChronoDuration::days(1))?;
    let start = end - ChronoDuration::days(SPAN_DAYS);
    let family = ReadingFilter::default().with_id1(Id1::parse(ID1)?);
    let have = store.count(&family).await?;
    if have >= rows {
        eprintln!("reusing {have} readings of {ID1}");
        return Ok(end);
    }
    let per_device = rows.div_ceil(DEVICES);
    let step_us = (SPAN_DAYS * 86_400 * 1_000_000) / per_device as i64;
    let (id1, bounds, now) = (Id1::parse(ID1)?, TimestampBounds::default(), Utc::now());
    let types: Vec<SensorType> = TYPES
        .iter()
        .map(|t| SensorType::parse(t))
        .collect::<Result<_, _>>()?;
    eprintln!(
        "loading {rows} readings ({per_device} per device, {DEVICES} devices, {SPAN_DAYS} days)…"
    );
    let started = Instant::now();
    let mut batch = Vec::with_capacity(5_000);
    let mut written = 0u64;
    // Time-major, as a live fleet writes: every device's k-th reading, then the next.
    'outer: for k in 0..per_device {
        for d in 0..DEVICES {
            if written >= rows {
                break 'outer;
            }
            let ts = start + ChronoDuration::microseconds(k as i64 * step_us + d as i64);
            batch.push(Reading::new(
                (k % 1000) as f64 / 10.0,
                types[(d % types.len() as u64) as usize].clone(),
                id1.clone(),
                Id2::new(d as i64)?,
                ts,
                &bounds,
                now,
            )?);
            written += 1;
            if batch.len() == 5_000 {
                store
                    .insert_batch(std::mem::take(&mut batch).into())
                    .await?;
                if written.is_multiple_of(1_000_000) {
                    eprintln!(
                        "  {written} rows, {:.0} rows/s",
                        written as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        }
    }
    store
        .insert_batch(std::mem::take(&mut batch).into())
        .await?;
    eprintln!("loaded in {:.0} s", started.elapsed().as_secs_f64());
    Ok(end)
}

fn filter(params: FilterParams<'_>) -> Result<ReadingFilter> {
    Ok(ReadingFilter::parse(params, Utc::now())?)
}

fn enc(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

fn dec(s: &str) -> String {
    s.replace("%2B", "+").replace("%3A", ":")
}

/// The query strings each client sends: `bench.requests` in all, split
/// over `bench.clients`.
fn plan(bench: &QueryBench, make_query: &(dyn Fn() -> String + Send + Sync)) -> Vec<Vec<String>> {
    let per_client = bench.requests.div_ceil(bench.clients);
    (0..bench.clients)
        .map(|_| (0..per_client).map(|_| make_query()).collect())
        .collect()
}

/// Runs one task per client over its share of `work`, all at once: returns
/// what every client measured, and how long the whole took.
async fn run_clients<W, T, F, Fut>(work: Vec<Vec<W>>, client: F) -> Result<(Vec<T>, Duration)>
where
    F: Fn(Vec<W>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>>> + Send + 'static,
    T: Send + 'static,
{
    let started = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .map(|mine| tokio::spawn(client(mine)))
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok((all, started.elapsed()))
}

/// Times the queries over HTTP, one keep-alive connection per client.
async fn time_http(
    addr: std::net::SocketAddr,
    token: &str,
    bench: &QueryBench,
    make_query: &(dyn Fn() -> String + Send + Sync),
) -> Result<Timing> {
    let work = plan(bench, make_query)
        .into_iter()
        .map(|queries| queries.into_iter().map(|q| (0, q)).collect())
        .collect();
    let (mut series, total) = http_series(addr, token, work, 1).await?;
    Ok(timing(series.remove(0), total))
}

/// Times two shapes at once, every client alternating between them, so
/// that both see the same machine: a ratio of their latencies is not moved
/// by the drift between shapes timed one after the other.
async fn time_http_interleaved(
    addr: std::net::SocketAddr,
    token: &str,
    bench: &QueryBench,
    first: &(dyn Fn() -> String + Send + Sync),
    second: &(dyn Fn() -> String + Send + Sync),
) -> Result<(Timing, Timing)> {
    let work = plan(bench, first)
        .into_iter()
        .zip(plan(bench, second))
        .map(|(a, b)| {
            a.into_iter()
                .zip(b)
                .flat_map(|(qa, qb)| [(0, qa), (1, qb)])
                .collect()
        })
        .collect();
    let (mut series, total) = http_series(addr, token, work, 2).await?;
    let second = series.pop().unwrap_or_default();
    let first = series.pop().unwrap_or_default();
    Ok((timing(first, total), timing(second, total)))
}

/// Sends each client's queries, tagged with their series (`0..series`), on
/// a keep-alive connection of its own, all clients at once; returns each
/// series' latencies and the time the whole took.
async fn http_series(
    addr: std::net::SocketAddr,
    token: &str,
    work: Vec<Vec<(usize, String)>>,
    series: usize,
) -> Result<(Vec<Vec<Duration>>, Duration)> {
    let (tagged, total) = run_clients(work, |queries| {
        let token = token.to_owned();
        async move {
            let mut conn = HttpConnection::open(addr).await?;
            let mut latencies = Vec::with_capacity(queries.len());
            for (tag, q) in queries {
                let t = Instant::now();
                conn.get(&format!("/api/v1/readings?{q}"), &token).await?;
                latencies.push((tag, t.elapsed()));
            }
            Ok(latencies)
        }
    })
    .await?;
    let mut by_series = vec![Vec::new(); series];
    for (tag, latency) in tagged {
        by_series[tag].push(latency);
    }
    Ok((by_series, total))
}

/// Times the same filters straight on the store, with the same concurrency.
async fn time_store(
    store: &SharedStore,
    cursors: &datastream_api::cursor::CursorCodec,
    bench: &QueryBench,
    make_query: &(dyn Fn() -> String + Send + Sync),
) -> Result<Timing> {
    let work = plan(bench, make_query)
        .into_iter()
        .map(|queries| queries.iter().map(|q| query_filter(q, cursors)).collect())
        .collect::<Result<Vec<Vec<ReadingFilter>>>>()?;
    let (latencies, total) = run_clients(work, |filters| {
        let store = store.clone();
        async move {
            let mut latencies = Vec::with_capacity(filters.len());
            for f in filters {
                let t = Instant::now();
                store.query(&f).await?;
                latencies.push(t.elapsed());
            }
            Ok(latencies)
        }
    })
    .await?;
    Ok(timing(latencies, total))
}

/// The store filter a query string means (as the API would build it).
fn query_filter(
    query: &str,
    cursors: &datastream_api::cursor::CursorCodec,
) -> Result<ReadingFilter> {
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), dec(v)))
        .collect();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let f = filter(FilterParams {
        id1: get("id1"),
        id2: get("id2"),
        sensor_type: get("sensor_type"),
        from: get("from"),
        to: get("to"),
        limit: get("limit"),
        page: get("page"),
        ..Default::default()
    })?;
    match get("cursor") {
        Some(c) => {
            let cursor = cursors.decode(c, f.order()).context("bench cursor")?;
            Ok(f.with_cursor(cursor)?)
        }
        None => Ok(f),
    }
}

fn timing(mut latencies: Vec<Duration>, total: Duration) -> Timing {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Timing {
        p50: pick(0.5),
        p99: pick(0.99),
        per_sec: latencies.len() as f64 / total.as_secs_f64(),
    }
}

/// A minimal HTTP/1.1 keep-alive client for GETs against the local API: the
/// benchmark measures the server, not a client library.
struct HttpConnection {
    stream: BufReader<TcpStream>,
    host: String,
}

impl HttpConnection {
    async fn open(addr: std::net::SocketAddr) -> Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(stream),
            host: addr.to_string(),
        })
    }

    async fn get(&mut self, path: &str, token: &str) -> Result<()> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
            self.host
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = None;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse::<usize>().ok();
                }
            }
        }
        let length = length.context("response without Content-Length")?;
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        if status != 200 {
            bail!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }
}

/// The report as printed.
pub fn render(report: &QueryReport, bench: &QueryBench) -> String {
    let mut s = format!(
        "results ({} rows, {} clients, {} requests per shape, {} API workers, {} database connections)\n  {:<36} {:>9} {:>9} {:>9}   {:>9} {:>9}   {:>9}   {:>11}\n",
        bench.rows, bench.clients, bench.requests, bench.api_workers,
        bench.pool_size.map_or("default".to_owned(), |n| n.to_string()), "query", "API p50", "API p99", "API req/s", "SQL p50", "SQL p99", "API÷SQL", "API CPU/req"
    );
    for r in &report.shapes {
        s.push_str(&format!(
            "  {:<36} {:>7.2}ms {:>7.2}ms {:>9.0}   {:>7.2}ms {:>7.2}ms   {:>9.2}   {:>11}\n",
            r.name,
            r.api.p50.as_secs_f64() * 1e3,
            r.api.p99.as_secs_f64() * 1e3,
            r.api.per_sec,
            r.sql.p50.as_secs_f64() * 1e3,
            r.sql.p99.as_secs_f64() * 1e3,
            r.api.p50.as_secs_f64() / r.sql.p50.as_secs_f64().max(1e-9),
            r.api_cpu.map_or("n/a".to_owned(), |cpu| format!(
                "{:.0}µs",
                cpu.as_secs_f64() * 1e6
            )),
        ));
    }
    let (first, deep) = &report.interleaved;
    s.push_str(&format!(
        "  cursor page {deep_page} ÷ page 1 (p50, interleaved): {:.2} (target ≤ 1.5; page 1 {:.2}ms, page {deep_page} {:.2}ms, {} requests each, every client alternating)\n",
        deep.p50.as_secs_f64() / first.p50.as_secs_f64().max(1e-9),
        first.p50.as_secs_f64() * 1e3,
        deep.p50.as_secs_f64() * 1e3,
        bench.interleaved_requests(),
        deep_page = page_label(bench.deep_page()),
    ));
    s
}

/// The first page's shape name.
const PAGE_1: &str = "page 1 (newest 100)";

/// A page number as the report writes it: `10,000`.
fn page_label(page: u32) -> String {
    let digits = page.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::page_label;

    #[test]
    fn page_labels_group_thousands() {
        assert_eq!(page_label(2), "2");
        assert_eq!(page_label(999), "999");
        assert_eq!(page_label(10_000), "10,000");
        assert_eq!(page_label(1_234_567), "1,234,567");
    }
}
