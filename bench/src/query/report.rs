//! `bench query`'s report as printed.

use super::shapes::page_label;
use super::{QueryBench, QueryReport};

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
