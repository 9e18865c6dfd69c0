//! The query shapes `bench query` times, and how the report names pages.

use super::timing::enc;
use super::{QueryBench, DEVICES, ID1, SPAN_DAYS, TYPES};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use datastream_domain::timestamp::format_timestamp;
use rand::Rng;
use std::sync::Arc;

/// Makes the query string of one request of a shape (random device, window…).
pub(super) type QueryMaker = Arc<dyn Fn() -> String + Send + Sync>;

/// One query shape the benchmark times.
pub(super) struct Shape {
    /// As the report names it.
    pub(super) name: String,
    /// Each request's query string.
    pub(super) query: QueryMaker,
    /// Takes seconds per request (the deep offset page): timed with a few
    /// requests from one client, unwarmed; sixteen at once would exhaust
    /// the connection pool.
    pub(super) slow: bool,
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

/// The five shapes, in report order: a device's latest readings, a window
/// of one sensor type, page 1, and the deep page by cursor and by offset.
/// `page_1` and `deep_by_cursor` are also timed together.
pub(super) fn shapes(
    bench: &QueryBench,
    span_end: DateTime<Utc>,
    page_1: QueryMaker,
    deep_by_cursor: QueryMaker,
) -> Vec<Shape> {
    let deep_page = bench.deep_page();
    vec![
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
        Shape::new(PAGE_1, page_1),
        Shape::new(
            format!("page {} by cursor", page_label(deep_page)),
            deep_by_cursor,
        ),
        Shape {
            slow: true,
            ..Shape::new(
                format!("page {} by offset", page_label(deep_page)),
                Arc::new(move || format!("limit=100&page={deep_page}")),
            )
        },
    ]
}

/// The first page's shape name.
pub(super) const PAGE_1: &str = "page 1 (newest 100)";

/// A page number as the report writes it: `10,000`.
pub(super) fn page_label(page: u32) -> String {
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
