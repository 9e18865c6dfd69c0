//! `datastream bench …`: benchmarks shipped with the product. Each measures
//! its own baselines in the same run and reports ratios against them.

mod broker_drops;
pub mod generate;
pub mod ingest;
mod publish;
pub mod query;
mod thread_cpu;
