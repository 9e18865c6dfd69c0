//! `bench ingest`'s report as printed.

use super::{IngestReport, PipelineRun};

impl IngestReport {
    /// Every pipeline run, in the order they ran.
    fn runs(&self) -> impl Iterator<Item = &PipelineRun> {
        [&self.naive, &self.full]
            .into_iter()
            .chain(self.paced.as_ref())
    }

    /// The report as printed by `datastream bench ingest`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let row = |name: &str, r: &PipelineRun| {
            format!(
                "  {name:<34} {:>9.0}/s published {:>9.0}/s landed   p50 {:>6.1} ms  p99 {:>7.1} ms   lost {}{}  duplicates absorbed {}\n",
                r.published_per_sec,
                r.landed_per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.lost,
                r.broker_dropped.map_or(String::new(), |n| format!(
                    " (broker dropped {n} message{})",
                    if n == 1 { "" } else { "s" }
                )),
                r.duplicates
            )
        };
        s.push_str("results\n");
        s.push_str(&format!(
            "  {:<34} {:>9.0}/s rows\n",
            "storage limit (INSERT IGNORE ×1000)", self.storage_rows_per_sec
        ));
        if let Some(rate) = self.load_data_file_rows_per_sec {
            s.push_str(&format!(
                "  {:<34} {:>9.0}/s rows\n",
                "LOAD DATA from a file (mariadb)", rate
            ));
        }
        s.push_str(&row("naive pipeline (batch of 1)", &self.naive));
        s.push_str(&row("pipeline, full speed", &self.full));
        if let Some(p) = &self.paced {
            let name = format!("pipeline at {:.0}/s", p.rate.unwrap_or_default());
            s.push_str(&row(&name, p));
        }
        s.push_str("ratios\n");
        s.push_str(&format!(
            "  landed ÷ storage limit   {:>6.2}   (target ≥ 0.6)\n",
            self.full.landed_per_sec / self.storage_rows_per_sec
        ));
        s.push_str(&format!(
            "  landed ÷ naive pipeline  {:>6.1}   (target ≥ 10)\n",
            self.full.landed_per_sec / self.naive.landed_per_sec
        ));
        if let Some(p) = &self.paced {
            s.push_str(&format!(
                "  p99 at half rate         {:>6.1} ms (target < 250 ms)\n",
                p.p99.as_secs_f64() * 1e3
            ));
        }
        if let Some(rss) = self.ingestor_peak_rss {
            s.push_str(&format!(
                "  ingestor peak RSS        {:>6.1} MiB (target < 64 MiB)\n",
                rss as f64 / (1024.0 * 1024.0)
            ));
        }
        if let Some(d) = &self.drain {
            s.push_str(&self.render_drain(d));
        }
        if self.runs().any(|r| r.broker_dropped.unwrap_or(0) > 0) {
            s.push_str(
                "note: the broker dropped messages, so readings were lost before any ingestor saw them: its\n\
                 \x20     per-client queue filled (Mosquitto's max_queued_messages, 1000 unless set); run it with\n\
                 \x20     the project's mosquitto.conf, which lifts the limit\n",
            );
        }
        let unexplained: u64 = self.runs().filter_map(PipelineRun::unexplained_loss).sum();
        if unexplained > 0 {
            s.push_str(&format!(
                "WARNING: {unexplained} reading(s) lost beyond what the broker dropped: the pipeline lost data; please report it\n"
            ));
        }
        s
    }

    /// The drain lines: each writer against both baselines, and rollups.
    fn render_drain(&self, d: &super::DrainReport) -> String {
        let (insert, load) = (d.mean("insert", true), d.mean("auto", true));
        let mut s = format!(
            "backlog drain ({} readings queued on the broker, ingestor started after)\n\
             \x20 broker alone (bare subscriber)     {:>9.0}/s\n\
             \x20 writer insert, rollups on          {insert:>9.0}/s\n\
             \x20 writer auto (LOAD DATA), rollups on {load:>8.0}/s\n\
             \x20 writer auto, rollups off           {:>9.0}/s\n\
             \x20 baseline INSERT IGNORE ×1000       {:>9.0}/s  (between the drains: {})\n",
            d.count,
            d.broker_alone,
            d.mean("auto", false),
            d.insert_baseline(),
            rates(&d.insert_baseline)
        );
        if let Some(file) = d.file_baseline() {
            s.push_str(&format!(
                "  baseline LOAD DATA from a file     {file:>9.0}/s  (between the drains: {})\n",
                rates(&d.file_baseline)
            ));
        }
        s.push_str(&format!(
            "  drain (auto) ÷ INSERT IGNORE ×1000  {:>6.2}   (target ≥ 1.0)\n",
            load / d.insert_baseline()
        ));
        if let Some(file) = d.file_baseline() {
            s.push_str(&format!(
                "  drain (auto) ÷ LOAD DATA from file  {:>6.2}   (target ≥ 0.6)\n",
                load / file
            ));
        }
        s.push_str(&format!(
            "  drain (auto) ÷ broker alone         {:>6.2}\n\
             \x20 drain, auto ÷ insert writer        {:>6.2}\n\
             \x20 drain, rollups on ÷ off            {:>6.2}   (target ≥ 0.9; rollups rebuilt {} s after)\n",
            load / d.broker_alone,
            load / insert,
            d.rollups_ratio(),
            d.caught_up()
                .map(|c| format!("{:.1}", c.as_secs_f64()))
                .collect::<Vec<_>>()
                .join(" / ")
        ));
        s
    }
}

/// Rates as `a / b / c`.
fn rates(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}
