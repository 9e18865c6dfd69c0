//! `bench ingest`'s report as printed.

use super::drain::{DrainReport, DrainSetting, Measured};
use super::{IngestReport, PipelineReport, PipelineRun};
use crate::figures::{median, median_and_range, median_if_any};

impl IngestReport {
    /// The report as printed by `datastream bench ingest`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(p) = &self.pipeline {
            s.push_str(&p.render());
        }
        if let Some(d) = &self.drain {
            s.push_str(&d.render());
        }
        s
    }
}

impl PipelineReport {
    /// Every pipeline run, in the order they ran.
    fn runs(&self) -> impl Iterator<Item = &PipelineRun> {
        [&self.naive, &self.full]
            .into_iter()
            .chain(self.paced.as_ref())
    }

    /// Steps 1 to 4 as printed.
    fn render(&self) -> String {
        let mut s = String::new();
        let row = |name: &str, r: &PipelineRun| {
            format!(
                "  {name:<34} {:>9.0}/s published {:>9.0}/s landed   p50 {:>6.1} ms  p99 {:>7.1} ms   lost {}{}  duplicates absorbed {}   load {:.2}, CPU s: ingestor {:.2}{}\n",
                r.published_per_sec,
                r.landed_per_sec,
                r.p50.as_secs_f64() * 1e3,
                r.p99.as_secs_f64() * 1e3,
                r.lost,
                r.broker_dropped.map_or(String::new(), |n| format!(
                    " (broker dropped {n} message{})",
                    if n == 1 { "" } else { "s" }
                )),
                r.duplicates,
                r.load_average,
                r.ingestor_cpu,
                r.database_cpu
                    .map_or(String::new(), |c| format!(", database {c:.2}"))
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
}

impl DrainReport {
    /// What the CPU the default drains took allows on this machine's cores:
    /// the writer's, the broker's and the database's seconds (medians) run
    /// side by side on every core at best, so the drain takes at least
    /// their sum ÷ cores; that rate ÷ the file load's. `None` without the
    /// broker's or the database's figures (a server elsewhere).
    fn cpu_floor(&self) -> Option<String> {
        let defaults = self.of(Measured::Drain(DrainSetting::DEFAULT));
        let writer = median_if_any(defaults.iter().map(|f| f.writer_cpu).collect())?;
        let broker = median_if_any(defaults.iter().filter_map(|f| f.broker_cpu).collect())?;
        let database = median_if_any(defaults.iter().filter_map(|f| f.database_cpu).collect())?;
        let floor = (writer + broker + database) / self.cores.max(1) as f64;
        let ceiling = self.count as f64 / floor;
        let of_file = median_if_any(self.rates(Measured::FileBaseline))
            .map_or(String::new(), |file| {
                format!(" = {:.2}× the file load", ceiling / file)
            });
        let name = format!("drain's CPU on {} cores", self.cores);
        Some(format!(
            "  {name:<40} writer {writer:.2} + broker {broker:.2} + database {database:.2} s: at most {ceiling:.0}/s{of_file}\n"
        ))
    }

    /// The drain rounds as printed: each figure's median and range, the
    /// ratios round by round and how many rounds met each target.
    fn render(&self) -> String {
        const DEFAULT: Measured = Measured::Drain(DrainSetting::DEFAULT);
        let mut s = format!(
            "backlog drain: {} readings queued on the broker, ingestor started after; {} rounds, medians (ranges)\n\
             \x20 broker alone (bare subscriber)        {:>9.0}/s\n",
            self.count, self.rounds, self.broker_alone
        );
        let rows = [
            ("drain, defaults (LOAD DATA, rollups on)", DEFAULT),
            (
                "drain, INSERT writer",
                Measured::Drain(DrainSetting::INSERT_WRITER),
            ),
            (
                "drain, rollups off",
                Measured::Drain(DrainSetting::ROLLUPS_OFF),
            ),
            ("INSERT IGNORE ×1000, straight", Measured::InsertBaseline),
            ("LOAD DATA from a file (mariadb)", Measured::FileBaseline),
        ];
        for (name, what) in rows {
            let figures = self.of(what);
            if figures.is_empty() {
                continue;
            }
            let loads: Vec<f64> = figures.iter().map(|f| f.load_average).collect();
            let writer_cpu = median(figures.iter().map(|f| f.writer_cpu).collect());
            let labelled = |label: &str, cpu: Vec<f64>| {
                median_if_any(cpu).map_or(String::new(), |m| format!(", {label} {m:.2}"))
            };
            s.push_str(&format!(
                "  {name:<40} {}/s  load {}  CPU s: writer {writer_cpu:.2}{}{}\n",
                median_and_range(&self.rates(what), 0),
                median_and_range(&loads, 2),
                labelled(
                    "broker",
                    figures.iter().filter_map(|f| f.broker_cpu).collect()
                ),
                labelled(
                    "database",
                    figures.iter().filter_map(|f| f.database_cpu).collect()
                ),
            ));
        }
        let ratio_line = |name: &str, a: Measured, b: Measured, target: Option<f64>| {
            let ratios = self.ratios(a, b);
            if ratios.is_empty() {
                return String::new();
            }
            let per_round = ratios
                .iter()
                .map(|r| format!("{r:.2}"))
                .collect::<Vec<_>>()
                .join(" ");
            let met = target.map_or(String::new(), |t| {
                format!(
                    "   target ≥ {t} in 4 of 5: met in {} of {}",
                    ratios.iter().filter(|r| **r >= t).count(),
                    ratios.len()
                )
            });
            format!(
                "  {name:<40} {}  [{per_round}]{met}\n",
                median_and_range(&ratios, 2)
            )
        };
        s.push_str("ratios, same round (median (range) [round by round])\n");
        s.push_str(&ratio_line(
            "drain ÷ LOAD DATA from a file",
            DEFAULT,
            Measured::FileBaseline,
            Some(0.9),
        ));
        s.push_str(&ratio_line(
            "drain ÷ INSERT IGNORE ×1000",
            DEFAULT,
            Measured::InsertBaseline,
            Some(1.2),
        ));
        s.push_str(&ratio_line(
            "drain, LOAD DATA ÷ INSERT writer",
            DEFAULT,
            Measured::Drain(DrainSetting::INSERT_WRITER),
            None,
        ));
        s.push_str(&ratio_line(
            "drain, rollups on ÷ off",
            DEFAULT,
            Measured::Drain(DrainSetting::ROLLUPS_OFF),
            None,
        ));
        let defaults = self.of(DEFAULT);
        let caught_up: Vec<f64> = defaults
            .iter()
            .filter_map(|f| f.caught_up.map(|c| c.as_secs_f64()))
            .collect();
        let batches: Vec<f64> = defaults.iter().filter_map(|f| f.largest_batch).collect();
        let rss: Vec<f64> = defaults
            .iter()
            .filter_map(|f| f.peak_rss.map(|b| b as f64 / (1024.0 * 1024.0)))
            .collect();
        if let Some(floor) = self.cpu_floor() {
            s.push_str(&floor);
        }
        s.push_str(&format!(
            "  drain ÷ broker alone                     {:.2}\n\
             \x20 hours rebuilt after the last reading     {} s\n\
             \x20 largest batch                            {}\n\
             \x20 ingestor peak RSS                        {} MiB (target ≤ 64)\n",
            median(self.rates(DEFAULT)) / self.broker_alone,
            median_and_range(&caught_up, 1),
            median_and_range(&batches, 0),
            median_and_range(&rss, 1),
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::drain::Figure;

    fn figure(what: Measured, rate: f64, cpu: [f64; 3]) -> Figure {
        let [writer, broker, database] = cpu;
        Figure {
            what,
            round: 0,
            rate,
            load_average: 1.0,
            writer_cpu: writer,
            database_cpu: Some(database),
            broker_cpu: matches!(what, Measured::Drain(_)).then_some(broker),
            caught_up: None,
            largest_batch: None,
            peak_rss: None,
        }
    }

    #[test]
    fn the_cpu_floor_is_the_drains_cpu_shared_by_the_cores_against_the_file_load() {
        let report = DrainReport {
            count: 200_000,
            broker_alone: 160_000.0,
            rounds: 1,
            cores: 2,
            figures: vec![
                figure(
                    Measured::Drain(DrainSetting::DEFAULT),
                    100_000.0,
                    [0.5, 1.1, 1.4],
                ),
                figure(Measured::FileBaseline, 125_000.0, [0.0, 0.0, 1.4]),
            ],
        };
        // 3.0 CPU-s on 2 cores: at least 1.5 s, at most 133,333/s.
        assert_eq!(
            report.cpu_floor().expect("floor").trim(),
            "drain's CPU on 2 cores                   writer 0.50 + broker 1.10 + database 1.40 s: at most 133333/s = 1.07× the file load"
        );
    }

    #[test]
    fn without_the_brokers_cpu_there_is_no_floor() {
        let mut drain = figure(Measured::Drain(DrainSetting::DEFAULT), 1.0, [0.5, 1.1, 1.4]);
        drain.broker_cpu = None;
        let report = DrainReport {
            count: 1,
            broker_alone: 1.0,
            rounds: 1,
            cores: 2,
            figures: vec![drain],
        };
        assert_eq!(report.cpu_floor(), None);
    }
}
