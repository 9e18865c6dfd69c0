//! The benchmark's table: `rows` readings of 1,000 devices over the last
//! 30 days, loaded once and reused by later runs.

use super::{DEVICES, ID1, SPAN_DAYS, TYPES};
use anyhow::Result;
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use datastream_domain::{Id1, Id2, Reading, ReadingFilter, SensorType, TimestampBounds};
use datastream_store::SharedStore;
use std::time::Instant;

/// Makes sure `rows` bench readings exist; returns the end of their span.
pub(crate) async fn load(store: &SharedStore, rows: u64) -> Result<DateTime<Utc>> {
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
            batch.push(
                Reading::builder()
                    .sensor_value((k % 1000) as f64 / 10.0)
                    .sensor_type(types[(d % types.len() as u64) as usize].clone())
                    .id1(id1.clone())
                    .id2(Id2::new(d as i64)?)
                    .timestamp(ts)
                    .build(&bounds, now)?,
            );
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
