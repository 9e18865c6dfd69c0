//! `datastream bench query`: read latency and throughput over HTTP through
//! the real API, against the same queries run straight on the store.
//!
//! It loads `rows` readings (1,000 devices over the last 30 days; reused by
//! later runs) into the configured database, starts the API in-process on a
//! free port, and times five query shapes with `clients` concurrent
//! keep-alive connections. Each shape is warmed up first (untimed), so
//! the figures describe a running service, not its first connections; the
//! API and the store then take turns, block by block of requests, so that
//! their ratio is not moved by the machine's drift between them.
//! Page 1 and the deep page by cursor are then timed once more together,
//! every client alternating between them, for the cursor's ratio: two
//! shapes timed minutes apart on a shared machine differ by its drift.

mod analytics;
pub(crate) mod load;
mod report;

pub use analytics::{AnalyticsReport, ExportResult};
mod shapes;
mod timing;

pub use report::render;

use crate::thread_cpu::threads_cpu;
use anyhow::{bail, Context, Result};
use datastream_api::cursor::CursorCodec;
use datastream_api::AppState;
use datastream_api::DatabaseReadiness;
use datastream_domain::{FilterParams, PageCursor, Role, StoreError, Username};
use datastream_http::{HealthState, Server};
use datastream_store::SharedStore;
use shapes::{page_label, QueryMaker, Shape, PAGE_1};
use std::sync::Arc;
use std::time::Duration;
use timing::{
    filter, http_latencies, store_latencies, time_http, time_http_interleaved, time_store, timing,
    READINGS,
};
use tokio_util::sync::CancellationToken;

pub(crate) const ID1: &str = "QUERYBENCH";
const DEVICES: u64 = 1_000;
const TYPES: [&str; 4] = ["temperature", "humidity", "pressure", "co2"];
const SPAN_DAYS: i64 = 30;
/// actix-web names its worker threads `actix-server worker N`.
const API_THREADS: &str = "actix-server";
/// Fewest requests over which CPU time per request is reported.
const MIN_REQUESTS_FOR_CPU: usize = 100;

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
    /// The database's URL: on MariaDB, the analytics baselines run the same
    /// questions through the `mariadb` client.
    pub database_url: String,
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
    /// API p50 ÷ SQL p50 of each block of requests, in order: the two sides
    /// alternate block by block (`BLOCKS`).
    pub block_ratios: Vec<f64>,
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
    /// Aggregates, the device catalog and the export.
    pub analytics: AnalyticsReport,
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

/// Runs the benchmark on `store`.
pub async fn run(store: SharedStore, bench: &QueryBench) -> Result<QueryReport> {
    let span_end = load::load(&store, bench.rows).await?;
    let api = BenchApi::start(&store, bench).await?;
    let deep_page = bench.deep_page();
    let deep_cursor = deep_cursor(&store, &api.cursors, deep_page).await?;
    let page_1: QueryMaker = Arc::new(|| "limit=100".to_owned());
    let deep_by_cursor: QueryMaker = Arc::new(move || format!("limit=100&cursor={deep_cursor}"));

    let mut results = Vec::new();
    for shape in shapes::shapes(bench, span_end, page_1.clone(), deep_by_cursor.clone()) {
        eprintln!("timing: {}", shape.name);
        results.push(time_shape(&shape, &store, &api, bench).await?);
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
        api.server.addr(),
        &api.token,
        &pair_bench,
        page_1.as_ref(),
        deep_by_cursor.as_ref(),
    )
    .await?;
    let analytics = analytics::run(&store, &api, bench, span_end).await?;
    api.stop().await?;
    Ok(QueryReport {
        shapes: results,
        interleaved,
        analytics,
    })
}

/// The API under test: in-process on a free port, with a token for a bench
/// admin that cannot log in (its hash is no valid PHC string).
struct BenchApi {
    server: Server,
    stop: CancellationToken,
    token: String,
    cursors: CursorCodec,
}

impl BenchApi {
    async fn start(store: &SharedStore, bench: &QueryBench) -> Result<Self> {
        let secret: String = rand::distr::SampleString::sample_string(
            &rand::distr::Alphanumeric,
            &mut rand::rng(),
            48,
        );
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
        let server =
            datastream_api::start(listener, state, health, bench.api_workers, stop.clone())?;
        Ok(Self {
            server,
            stop,
            token,
            cursors,
        })
    }

    async fn stop(self) -> Result<()> {
        self.stop.cancel();
        Ok(self.server.wait().await?)
    }
}

/// The cursor of the deep page: the last row of the page before it.
async fn deep_cursor(store: &SharedStore, cursors: &CursorCodec, deep_page: u32) -> Result<String> {
    let page_before = (deep_page - 1).to_string();
    let rows = store
        .query(&filter(FilterParams {
            limit: Some("100"),
            page: Some(&page_before),
            ..Default::default()
        })?)
        .await?;
    let Some(last) = rows.last() else {
        let rows_needed = u64::from(deep_page) * 100;
        bail!(
            "fewer than {rows_needed} rows: page {} does not exist; use --rows {rows_needed} or more, or a smaller --deep-page",
            page_label(deep_page)
        );
    };
    Ok(cursors.encode(
        PageCursor {
            timestamp: last.timestamp,
            id: last.id,
        },
        datastream_domain::Order::Desc,
    ))
}

/// Blocks a shape's requests are split into, alternating between the API
/// and the store, so that both see the same machine: timed one after the
/// other, the same shape's API ÷ SQL came out between 0.66 and 1.47 on a
/// shared machine.
const BLOCKS: usize = 10;

/// Times one shape through the API and straight on the store, each after
/// an untimed warm-up (a slow shape: a few requests, unwarmed), in blocks
/// that alternate between the two (the first side alternates too).
async fn time_shape(
    shape: &Shape,
    store: &SharedStore,
    api: &BenchApi,
    bench: &QueryBench,
) -> Result<ShapeResult> {
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
    let addr = api.server.addr();
    if !shape.slow {
        time_http(addr, &api.token, &warm_up, READINGS, make_query).await?;
        time_store(store, &api.cursors, &warm_up, make_query).await?;
    }
    let blocks = BLOCKS.min(shape_bench.requests).max(1);
    let block = QueryBench {
        requests: (shape_bench.requests / blocks).max(shape_bench.clients),
        ..shape_bench.clone()
    };
    let (mut api_latencies, mut api_total) = (Vec::new(), Duration::ZERO);
    let (mut sql_latencies, mut sql_total) = (Vec::new(), Duration::ZERO);
    let mut api_cpu = Some(Duration::ZERO);
    let mut block_ratios = Vec::with_capacity(blocks);
    for b in 0..blocks {
        let mut api_block = None;
        let mut sql_block = None;
        for side in [b % 2, 1 - b % 2] {
            if side == 0 {
                let before = threads_cpu(API_THREADS);
                let (latencies, took) =
                    http_latencies(addr, &api.token, &block, READINGS, make_query).await?;
                api_cpu = api_cpu
                    .zip(before.zip(threads_cpu(API_THREADS)))
                    .map(|(sum, (before, after))| sum + after.saturating_sub(before));
                api_total += took;
                api_block = Some(timing(latencies.clone(), took));
                api_latencies.extend(latencies);
            } else {
                let (latencies, took) =
                    store_latencies(store, &api.cursors, &block, make_query).await?;
                sql_total += took;
                sql_block = Some(timing(latencies.clone(), took));
                sql_latencies.extend(latencies);
            }
        }
        if let (Some(a), Some(q)) = (api_block, sql_block) {
            block_ratios.push(a.p50.as_secs_f64() / q.p50.as_secs_f64().max(1e-9));
        }
    }
    let requests = api_latencies.len();
    // CPU time is counted in 10 ms ticks: a per-request figure needs enough
    // requests (a slow shape's three are not).
    let api_cpu = api_cpu
        .filter(|_| requests >= MIN_REQUESTS_FOR_CPU)
        .map(|cpu| cpu / requests as u32);
    Ok(ShapeResult {
        name: shape.name.clone(),
        api: timing(api_latencies, api_total),
        sql: timing(sql_latencies, sql_total),
        api_cpu,
        block_ratios,
    })
}
