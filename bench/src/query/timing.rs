//! Timing: each client sends its share of a shape's requests over one
//! keep-alive connection (or straight to the store), all at once; the
//! latencies become percentiles.

use super::{QueryBench, Timing};
use anyhow::{bail, Context, Result};
use chrono::Utc;
use datastream_api::cursor::CursorCodec;
use datastream_domain::{FilterParams, ReadingFilter};
use datastream_store::SharedStore;
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A query-string value, percent-encoded.
pub(super) fn enc(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

fn dec(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

pub(super) fn filter(params: FilterParams<'_>) -> Result<ReadingFilter> {
    Ok(ReadingFilter::parse(params, Utc::now())?)
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

/// Where the reading shapes go.
pub(super) const READINGS: &str = "/api/v1/readings";

/// Times the queries of `path` over HTTP, one keep-alive connection per
/// client.
pub(super) async fn time_http(
    addr: SocketAddr,
    token: &str,
    bench: &QueryBench,
    path: &str,
    make_query: &(dyn Fn() -> String + Send + Sync),
) -> Result<Timing> {
    let (latencies, total) = http_latencies(addr, token, bench, path, make_query).await?;
    Ok(timing(latencies, total))
}

/// The latencies of `bench.requests` queries of `path` over HTTP, and how
/// long they took together.
pub(super) async fn http_latencies(
    addr: SocketAddr,
    token: &str,
    bench: &QueryBench,
    path: &str,
    make_query: &(dyn Fn() -> String + Send + Sync),
) -> Result<(Vec<Duration>, Duration)> {
    let work = plan(bench, make_query)
        .into_iter()
        .map(|queries| queries.into_iter().map(|q| (0, q)).collect())
        .collect();
    let (mut series, total) = http_series(addr, token, path, work, 1).await?;
    Ok((series.remove(0), total))
}

/// Times two shapes at once, every client alternating between them, so
/// that both see the same machine: a ratio of their latencies is not moved
/// by the drift between shapes timed one after the other.
pub(super) async fn time_http_interleaved(
    addr: SocketAddr,
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
    let (mut series, total) = http_series(addr, token, READINGS, work, 2).await?;
    let second = series.pop().unwrap_or_default();
    let first = series.pop().unwrap_or_default();
    Ok((timing(first, total), timing(second, total)))
}

/// Sends each client's queries to `path`, tagged with their series (`0..series`), on
/// a keep-alive connection of its own, all clients at once; returns each
/// series' latencies and the time the whole took.
async fn http_series(
    addr: SocketAddr,
    token: &str,
    path: &str,
    work: Vec<Vec<(usize, String)>>,
    series: usize,
) -> Result<(Vec<Vec<Duration>>, Duration)> {
    // Blocking clients on threads of their own: one keep-alive connection
    // each, as a dashboard keeps, and no async runtime between the clock
    // and the socket.
    let started = Instant::now();
    let clients: Vec<_> = work
        .into_iter()
        .map(|queries| {
            let token = format!("Bearer {token}");
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || -> Result<Vec<(usize, Duration)>> {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .max_idle_connections_per_host(1)
                    .build()
                    .into();
                let mut latencies = Vec::with_capacity(queries.len());
                for (tag, q) in queries {
                    let t = Instant::now();
                    get(&agent, &format!("http://{addr}{path}?{q}"), &token)?;
                    latencies.push((tag, t.elapsed()));
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut tagged = Vec::new();
    for client in clients {
        tagged.extend(client.await??);
    }
    let total = started.elapsed();
    let mut by_series = vec![Vec::new(); series];
    for (tag, latency) in tagged {
        by_series[tag].push(latency);
    }
    Ok((by_series, total))
}

/// Times the same filters straight on the store, with the same concurrency.
pub(super) async fn time_store(
    store: &SharedStore,
    cursors: &CursorCodec,
    bench: &QueryBench,
    make_query: &(dyn Fn() -> String + Send + Sync),
) -> Result<Timing> {
    let (latencies, total) = store_latencies(store, cursors, bench, make_query).await?;
    Ok(timing(latencies, total))
}

/// The latencies of the same filters straight on the store, and how long
/// they took together.
pub(super) async fn store_latencies(
    store: &SharedStore,
    cursors: &CursorCodec,
    bench: &QueryBench,
    make_query: &(dyn Fn() -> String + Send + Sync),
) -> Result<(Vec<Duration>, Duration)> {
    let work = plan(bench, make_query)
        .into_iter()
        .map(|queries| queries.iter().map(|q| query_filter(q, cursors)).collect())
        .collect::<Result<Vec<Vec<ReadingFilter>>>>()?;
    run_clients(work, |filters| {
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
    .await
}

/// The store filter a query string means (as the API would build it).
fn query_filter(query: &str, cursors: &CursorCodec) -> Result<ReadingFilter> {
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

pub(super) fn timing(mut latencies: Vec<Duration>, total: Duration) -> Timing {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Timing {
        p50: pick(0.5),
        p99: pick(0.99),
        per_sec: latencies.len() as f64 / total.as_secs_f64(),
    }
}

/// One GET, its body read whole; anything but 200 is an error.
fn get(agent: &ureq::Agent, url: &str, authorization: &str) -> Result<()> {
    let mut resp = agent
        .get(url)
        .header("Authorization", authorization)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let body = resp
        .body_mut()
        .read_to_vec()
        .context("reading a response body")?;
    if resp.status() != 200 {
        bail!(
            "{url} answered {}: {}",
            resp.status(),
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}
