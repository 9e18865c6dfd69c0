//! `Backlog`: the readings a drain's backlog holds, so that the drain and
//! the baselines it is compared with write the same rows in the same order.
//!
//! Where rows go in the table's indexes costs the database more or less
//! CPU: a baseline that wrote one device range in timestamp order while the
//! drain interleaved four devices across three hours was an easier load
//! than the drain's (docs/PERFORMANCE.md).

use crate::publish::PublishPlan;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use datastream_domain::{Id1, Id2, MqttUrl, Reading, SensorType, TimestampBounds};

/// Readings a publisher sends before the next one's turn comes, as the
/// broker interleaves them (`publish.rs` sends bursts of 256 messages).
const BURST: usize = 256;

/// `count` readings of `id1`, one device per publisher, device `p` stamped
/// `hours_back + p % 3` hours back.
#[derive(Debug, Clone)]
pub(super) struct Backlog {
    pub id1: String,
    pub devices: usize,
    pub count: usize,
    pub hours_back: i64,
}

impl Backlog {
    /// The backlog of run `run_id`'s figure `tag` (its id1 names both): a
    /// device per publisher.
    pub fn of_run(run_id: &str, tag: &str, devices: usize, count: usize, hours_back: i64) -> Self {
        Backlog {
            id1: format!("BENCH{run_id}{}", tag.to_ascii_uppercase()),
            devices,
            count,
            hours_back,
        }
    }

    /// Devices actually used (at least one, at most one per reading).
    fn device_count(&self) -> usize {
        self.devices.clamp(1, self.count.max(1))
    }

    /// Readings device `p` holds.
    fn share(&self, p: usize) -> usize {
        let devices = self.device_count();
        self.count / devices + usize::from(p < self.count % devices)
    }

    /// How far back device `p`'s readings are stamped.
    fn backdate(&self, p: usize) -> ChronoDuration {
        ChronoDuration::hours(self.hours_back + (p % 3) as i64)
    }

    /// Messages the publishers send, `per_message` readings to a message.
    pub fn messages(&self, per_message: usize) -> usize {
        (0..self.device_count())
            .map(|p| self.share(p).div_ceil(per_message.max(1)))
            .sum()
    }

    /// What each device's publisher sends to `mqtt` (readings stamped as
    /// they are published, `per_message` to a message).
    pub fn publish_plans(&self, mqtt: &MqttUrl, per_message: usize) -> Vec<PublishPlan> {
        (0..self.device_count())
            .map(|p| PublishPlan {
                mqtt: mqtt.clone(),
                client_id: format!("bench-pub-{}-{p}", self.id1).to_ascii_lowercase(),
                id1: self.id1.clone(),
                id2: p as u32,
                count: self.share(p),
                rate: None,
                per_message,
                backdate: self.backdate(p),
            })
            .collect()
    }

    /// The same readings as the publishers send, stamped from `now` 10 µs
    /// apart per device (as fast as a publisher stamps them), in the order
    /// a broker hands them out: a burst of each device's in turn.
    pub fn readings(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<Reading>> {
        let id1 = Id1::parse(&self.id1)?;
        let sensor_type = SensorType::parse("bench")?;
        let bounds = TimestampBounds::default();
        let devices = self.device_count();
        let mut next = vec![0usize; devices];
        let mut readings = Vec::with_capacity(self.count);
        while readings.len() < self.count {
            for (p, sent) in next.iter_mut().enumerate() {
                let until = (*sent + BURST).min(self.share(p));
                for k in *sent..until {
                    let stamped =
                        now - self.backdate(p) + ChronoDuration::microseconds(10 * k as i64);
                    readings.push(
                        Reading::builder()
                            .sensor_value(k as f64 * 0.01)
                            .sensor_type(sensor_type.clone())
                            .id1(id1.clone())
                            .id2(Id2::new(p as i64)?)
                            .timestamp(stamped)
                            .build(&bounds, now)?,
                    );
                }
                *sent = until;
            }
        }
        Ok(readings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog(count: usize) -> Backlog {
        Backlog {
            id1: "BENCHX".to_owned(),
            devices: 4,
            count,
            hours_back: 1,
        }
    }

    #[test]
    fn the_baselines_readings_are_the_published_ones_device_by_device() {
        let b = backlog(1_001);
        let mqtt = MqttUrl::parse("mqtt://127.0.0.1:1883").expect("url");
        let plans = b.publish_plans(&mqtt, 1);
        let readings = b.readings(Utc::now()).expect("readings");
        assert_eq!(readings.len(), 1_001);
        for plan in &plans {
            let own = readings
                .iter()
                .filter(|r| r.id2().get() as u32 == plan.id2)
                .count();
            assert_eq!(own, plan.count, "device {}", plan.id2);
        }
        assert_eq!(plans.iter().map(|p| p.count).sum::<usize>(), 1_001);
        // 251 + 3 × 250 readings, 10 to a message.
        assert_eq!(b.messages(10), 26 + 3 * 25);
    }

    #[test]
    fn the_baselines_readings_take_turns_in_bursts_across_three_hours() {
        let now = Utc::now();
        let readings = backlog(4 * BURST * 2).readings(now).expect("readings");
        let order: Vec<i32> = readings.chunks(BURST).map(|c| c[0].id2().get()).collect();
        assert_eq!(order, [0, 1, 2, 3, 0, 1, 2, 3]);
        let hours_back = |p: i32| {
            let r = readings
                .iter()
                .find(|r| r.id2().get() == p)
                .expect("device");
            (now - r.timestamp()).num_hours()
        };
        assert_eq!(
            [hours_back(0), hours_back(1), hours_back(2), hours_back(3)],
            [1, 2, 3, 1]
        );
    }
}
