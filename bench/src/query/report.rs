//! `bench query`'s report as printed.

use super::shapes::page_label;
use super::{AnalyticsReport, QueryBench, QueryReport};

/// The report as printed.
pub fn render(report: &QueryReport, bench: &QueryBench) -> String {
    let mut s = format!(
        "results ({} rows, {} clients, {} requests per shape, {} API workers, {} database connections)\n  {:<36} {:>9} {:>9} {:>9}   {:>9} {:>9}   {:>9}   {:>11}\n",
        bench.rows, bench.clients, bench.requests, bench.api_workers,
        bench.pool_size.map_or("default".to_owned(), |n| n.to_string()), "query", "API p50", "API p99", "API req/s", "SQL p50", "SQL p99", "API÷SQL", "API CPU/req"
    );
    s.push_str(&format!(
        "  (the API and the store take turns in blocks of requests; API÷SQL is of the p50s over all blocks, with the median and range of the blocks' own ratios)\n  load average {:.2}\n",
        crate::figures::load_average()
    ));
    for r in &report.shapes {
        s.push_str(&format!(
            "  {:<36} {:>7.2}ms {:>7.2}ms {:>9.0}   {:>7.2}ms {:>7.2}ms   {:>9.2}   {:>11}   blocks {}\n",
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
            crate::figures::median_and_range(&r.block_ratios, 2),
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
    s.push_str(&render_analytics(&report.analytics));
    s
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The analytics section: each shape's API latency beside the same-run
/// baseline and the target.
fn render_analytics(a: &AnalyticsReport) -> String {
    let mut s = String::from("analytics\n");
    if a.rollup_hours > 0 {
        s.push_str(&format!(
            "  rollups of {} hours built before timing, in {:.1} s\n",
            a.rollup_hours,
            a.rollup_build.as_secs_f64()
        ));
    }
    let t = &a.type_hourly;
    s.push_str(&format!(
        "  {:<44} API p50 {:>7.2}ms p99 {:>7.2}ms {:>7.0} req/s (target p99 ≤ 50 ms)\n",
        "one sensor type, 30 days, hourly, by type",
        ms(t.p50),
        ms(t.p99),
        t.per_sec
    ));
    match &a.group_by {
        Some(g) => s.push_str(&format!(
            "  {:<44} p50 {:>9.0}ms p99 {:>9.0}ms → API {:.0}× faster at p50 (target ≥ 50×)\n",
            "  the same as a plain GROUP BY on MariaDB",
            ms(g.p50),
            ms(g.p99),
            g.p50.as_secs_f64() / t.p50.as_secs_f64().max(1e-9)
        )),
        None => s.push_str(
            "    plain GROUP BY baseline: n/a (needs MariaDB and its `mariadb` client)\n",
        ),
    }
    for (name, shape) in [
        ("one device, 30 days, automatic interval", &a.device_auto),
        ("/devices, every device", &a.devices),
    ] {
        let (t, one) = (&shape.all_clients, &shape.one_client);
        s.push_str(&format!(
            "  {name:<44} API p50 {:>7.2}ms p99 {:>7.2}ms {:>7.0} req/s (target p99 ≤ 20 ms)\n",
            ms(t.p50),
            ms(t.p99),
            t.per_sec
        ));
        let cpu = shape
            .api_cpu
            .map_or("n/a".to_owned(), |c| format!("{}µs", c.as_micros()));
        s.push_str(&format!(
            "  {:<44} API p50 {:>7.2}ms p99 {:>7.2}ms {:>7.0} req/s; API CPU/req {cpu}\n",
            "  the same, one client",
            ms(one.p50),
            ms(one.p99),
            one.per_sec
        ));
    }
    let e = &a.export;
    s.push_str(&format!(
        "  {:<44} API {:>9.0} rows/s",
        format!("export of {} rows as CSV", e.rows),
        e.api_rows_per_sec
    ));
    match e.baseline_rows_per_sec {
        Some(b) => s.push_str(&format!(
            ", mariadb --batch --quick {b:.0} rows/s (medians) → {} (target ≥ 0.5)",
            crate::figures::median_and_range(&e.ratios, 2)
        )),
        None => s.push_str(", mariadb --batch: n/a (needs MariaDB)"),
    }
    if let Some((baseline, api)) = &e.plans {
        s.push_str(&format!(
            "\n  {:<44} index read: baseline {baseline}, API pages {api}",
            ""
        ));
    }
    if let Some(growth) = e.rss_growth {
        s.push_str(&format!(
            "; resident memory +{:.1} MiB (target < 32 MiB)",
            growth as f64 / (1024.0 * 1024.0)
        ));
    }
    s.push('\n');
    s
}
