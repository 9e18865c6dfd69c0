//! The command line: every subcommand and flag, as clap reads them.

use clap::{Args, Parser, Subcommand};
use datastream::{ListenAddr, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Sensor data pipeline: simulated sensors → MQTT → batched ingest → SQL → JWT REST API.
#[derive(Parser)]
#[command(name = "datastream", version, about)]
pub struct Cli {
    /// TOML file with settings (keys as the lower-case environment names).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags that override the file and the environment.
#[derive(Args)]
pub struct Overrides {
    /// Database: sqlite://PATH or mysql://user:pass@host:port/db [env: DATABASE_URL]
    #[arg(long, global = true)]
    pub database_url: Option<String>,
    /// External MQTT broker, e.g. mqtt://127.0.0.1:1883 [env: MQTT_URL]
    #[arg(long, global = true)]
    pub mqtt_url: Option<String>,
    /// Embedded broker address [env: MQTT_LISTEN]
    #[arg(long, global = true)]
    pub mqtt_listen: Option<SocketAddr>,
    /// REST API address [env: API_LISTEN]
    #[arg(long, global = true)]
    pub api_listen: Option<SocketAddr>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run everything in one process: broker, ingestor, API, generators (the default).
    Up,
    /// Run the embedded MQTT broker alone.
    Broker,
    /// Run a generator fleet (REST + MQTT control), or one fixed simulated sensor.
    Generator(GeneratorArgs),
    /// Run an ingestor: MQTT shared subscription → database.
    Ingestor(IngestorArgs),
    /// Run an alerter: alert rules evaluated on the reading stream; one of
    /// several is active, the others stand by.
    Alerter,
    /// Run the gRPC gateway: readings in (acked after the broker's PUBACK)
    /// and live readings out.
    Grpc,
    /// Run the REST API.
    Api,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API users.
    #[command(subcommand)]
    User(UserCommand),
    /// Benchmarks that measure their own baselines and print ratios.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        /// Login name ([A-Za-z0-9_.-]{1,64}).
        username: String,
        /// admin or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// List users and their roles.
    List,
    /// Set a user's password, read from standard input (the way back in
    /// for a forgotten admin password).
    SetPassword {
        /// The user.
        username: String,
    },
    /// Give a user another role (the last admin cannot be demoted).
    SetRole {
        /// The user.
        username: String,
        /// admin or viewer.
        role: String,
    },
    /// Delete a user (never the last admin).
    Delete {
        /// The user.
        username: String,
    },
}

#[derive(Subcommand)]
pub enum BenchCommand {
    /// MQTT → database throughput, latency, loss and memory, against direct
    /// inserts and a one-reading-per-transaction pipeline. Needs MQTT_URL.
    Ingest(IngestBenchArgs),
    /// Read latency and requests/s over HTTP through the API, against the
    /// same queries straight on the database. Loads --rows readings first
    /// (reused by later runs).
    Query(QueryBenchArgs),
    /// Readings one generator process makes on one core, and CPU per
    /// reading, against a bare publish loop. Uses MQTT_URL, else starts the
    /// embedded broker.
    Generate(GenerateBenchArgs),
    /// Live-stream latency (publish → Server-Sent-Event client), delivery
    /// and the API's memory with many clients, against mosquitto_sub on the
    /// same readings. Needs MQTT_URL.
    Stream(StreamBenchArgs),
    /// The alerter beside an ingestor (10,000 devices, three rules each,
    /// 5,000 readings/s): crossing → notification latency, the alerter's
    /// memory, and ingest against the same ingest without it, in
    /// interleaved rounds. Needs MQTT_URL; give it a database of its own.
    Alerts(AlertsBenchArgs),
    /// The gRPC gateway against publishing to the broker directly, in
    /// interleaved rounds with one ingestor: readings landed per second,
    /// ack latency, the gateway's memory. Needs MQTT_URL (a login that may
    /// publish) and DATABASE_URL.
    Grpc(GrpcBenchArgs),
    /// Removing the oldest day of a large table with RETENTION: its cost,
    /// and ingest while it runs against ingest alone; on MySQL also against
    /// dropping a day partition. Removes that day for good: give it a
    /// database of its own.
    Retention(RetentionBenchArgs),
}

/// Arguments of `bench grpc`.
#[derive(Args)]
pub struct GrpcBenchArgs {
    /// Readings per round.
    #[arg(long, default_value_t = 100_000)]
    pub readings: u64,
    /// Connections (MQTT clients, or gRPC streams) per round, each its own
    /// device.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Rounds of each kind, interleaved.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Args)]
pub struct AlertsBenchArgs {
    /// Devices the readings are spread over.
    #[arg(long, default_value_t = 10_000)]
    pub devices: u32,
    /// Readings published per second.
    #[arg(long, default_value_t = 5_000.0)]
    pub rate: f64,
    /// Of those, readings per second that cross a threshold.
    #[arg(long, default_value_t = 20.0)]
    pub crossings: f64,
    /// Seconds of publishing per round.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Rounds of each kind (without and with the alerter), interleaved.
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
}

#[derive(Args)]
pub struct RetentionBenchArgs {
    /// Readings in the table (`bench query`'s: 1,000 devices over 30 days;
    /// loaded if missing).
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
    /// Seconds of ingest alone, the baseline.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

#[derive(Args)]
pub struct StreamBenchArgs {
    /// Concurrent stream clients, each watching one device.
    #[arg(long, default_value_t = 1_000)]
    pub clients: usize,
    /// Of those, how many watch the whole sensor type instead.
    #[arg(long, default_value_t = 2)]
    pub type_watchers: usize,
    /// Readings published per second, over all devices.
    #[arg(long, default_value_t = 5_000.0)]
    pub rate: f64,
    /// Devices the readings are spread over.
    #[arg(long, default_value_t = 1_000)]
    pub devices: u32,
    /// Seconds measured.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

#[derive(Args)]
pub struct GenerateBenchArgs {
    /// Devices at 1 Hz in the many-devices scenario.
    #[arg(long, default_value_t = 10_000)]
    pub devices: u32,
    /// Readings/s of the single fast generator.
    #[arg(long, default_value_t = 20_000.0)]
    pub fast_rate: f64,
    /// Seconds measured per scenario.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

#[derive(Args)]
pub struct QueryBenchArgs {
    /// Readings in the benchmark's device family (loaded if missing).
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Requests per query shape. 20,000 take ~6 s at 3,000/s: over fewer
    /// (4,000 is ~1.3 s) a single stall of a shared machine makes the p99.
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    /// The deep page compared with page 1 (needs 100 × this many rows).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(2..))]
    pub deep_page: u32,
}

#[derive(Args)]
pub struct IngestBenchArgs {
    /// Readings per pipeline run.
    #[arg(long, default_value_t = 100_000)]
    pub count: usize,
    /// Total publish rate in readings/s; omitted: full speed, then half the
    /// landed rate for the latency figures.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Ingestor processes sharing the group.
    #[arg(long, default_value_t = 1)]
    pub ingestors: usize,
    /// Readings for the one-per-transaction baseline.
    #[arg(long, default_value_t = 5_000)]
    pub naive_count: usize,
    /// Readings per MQTT message: 1 sends one JSON object each; more sends
    /// JSON arrays, as gateways that batch do.
    #[arg(long, default_value_t = 1)]
    pub per_message: usize,
    /// Readings in each backlog drained and in each of the drain's
    /// baselines; 0 skips the step.
    #[arg(long, default_value_t = 200_000)]
    pub drain_count: usize,
    /// Rounds of the drain step: each drains a backlog with the defaults,
    /// measures both baselines and drains with a variant, in rotating order.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=26))]
    pub drain_rounds: u64,
    /// Run only the drain step (step 5).
    #[arg(long)]
    pub drain_only: bool,
}

#[derive(Args)]
pub struct IngestorArgs {
    /// End this ingestor's persistent session on the broker (INGEST_CLIENT_ID)
    /// and exit: for removing a replica for good, so the broker stops
    /// queueing messages for it.
    #[arg(long)]
    pub end_session: bool,
}

/// Without `--sensor-type`: a fleet process, controlled over REST
/// (GENERATOR_LISTEN) and retained MQTT config messages. With it: one
/// fixed generator and no control plane.
#[derive(Args)]
pub struct GeneratorArgs {
    /// Run the generators configured for this fleet [env: GENERATOR_FLEET, default: default]
    #[arg(long, conflicts_with = "sensor_type")]
    pub fleet: Option<String>,
    /// One fixed generator: its sensor type, e.g. temperature ([a-z0-9_-]{1,64}).
    #[arg(long, requires_all = ["id1", "id2"])]
    pub sensor_type: Option<String>,
    /// Readings per second (0.001 to 10000).
    #[arg(long, default_value_t = 1.0, requires = "sensor_type")]
    pub frequency_hz: f64,
    /// Device id part 1 ([A-Z]{1,32}).
    #[arg(long, requires = "sensor_type")]
    pub id1: Option<String>,
    /// Device id part 2 (0 to 2147483647).
    #[arg(long, requires = "sensor_type")]
    pub id2: Option<i64>,
    /// Generator name (default: {sensor_type}-{id1}-{id2}).
    #[arg(long, requires = "sensor_type")]
    pub name: Option<String>,
    /// Stand for the devices id2..=id2-end instead of one (at most 10,000).
    #[arg(long, requires = "sensor_type")]
    pub id2_end: Option<i64>,
    /// How values move: sine (daily cycle plus noise) or random_walk.
    #[arg(long, requires = "sensor_type")]
    pub model: Option<String>,
    /// Lowest value (default: the sensor type's typical range).
    #[arg(long, requires = "sensor_type", allow_negative_numbers = true)]
    pub min: Option<f64>,
    /// Highest value.
    #[arg(long, requires = "sensor_type", allow_negative_numbers = true)]
    pub max: Option<f64>,
    /// Jitter (sine) or largest step (random walk).
    #[arg(long, requires = "sensor_type")]
    pub noise: Option<f64>,
    /// Publish readings over `mqtt` or through the gRPC gateway (`grpc`;
    /// sign in with GENERATOR_GRPC_USERNAME / GENERATOR_GRPC_PASSWORD)
    /// [env: GENERATOR_TRANSPORT, default: mqtt]
    #[arg(long, value_parser = ["mqtt", "grpc"])]
    pub transport: Option<String>,
    /// The gRPC gateway for `--transport grpc` [env: GENERATOR_GRPC_URL,
    /// default: http://127.0.0.1:50051]
    #[arg(long)]
    pub grpc_url: Option<String>,
}

impl Overrides {
    /// Applies the flags given over the file and the environment.
    pub fn apply(&self, s: &mut Settings) {
        if let Some(v) = &self.database_url {
            s.database_url = v.clone();
        }
        if let Some(v) = &self.mqtt_url {
            s.mqtt_url = Some(v.clone());
        }
        if let Some(v) = self.mqtt_listen {
            s.mqtt_listen = ListenAddr::chosen(v);
        }
        if let Some(v) = self.api_listen {
            s.api_listen = ListenAddr::chosen(v);
        }
    }
}
