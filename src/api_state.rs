//! What a process that serves readings builds from the settings: the API's
//! state (token verifier, user directory, read replica, generator link)
//! and the live feed its streams read. `up`, `datastream api` and the gRPC
//! gateway all start here.

use crate::connections::decode_limits;
use crate::settings::Settings;
use anyhow::{Context, Result};
use datastream_api::generator_link::GeneratorLink;
use datastream_api::{AppState, LiveReadings};
use datastream_domain::MqttUrl;
use datastream_ingestor::LiveFeed;
use datastream_store as store;
use datastream_store::SharedStore;
use rand::distr::{Alphanumeric, SampleString};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The API's state: tokens and cursors signed with `secret` (refusing a
/// weak one), users looked up in `store`, reading queries sent to
/// `DATABASE_READ_URL` when it is set.
pub async fn app_state(store: &SharedStore, secret: &str, settings: &Settings) -> Result<AppState> {
    let state = AppState::new(
        store.clone(),
        secret.as_bytes(),
        Duration::from_secs(settings.jwt_ttl_secs),
    )
    .context("JWT_SECRET refused")?;
    let state = match &settings.generators_url {
        Some(url) => state.with_generator_service(GeneratorLink::new(url)?),
        None => state,
    };
    Ok(match &settings.database_read_url {
        Some(url) => {
            let replica = store::connect_replica(url, settings.store_options())
                .await
                .with_context(|| format!("opening read replica {}", store::redact_url(url)))?;
            state.with_read_replica(replica)
        }
        None => state,
    })
}

/// Starts this API process's live feed from `mqtt`, until `stop`: the
/// readings its streams send.
pub fn start_live_feed(
    settings: &Settings,
    mqtt: MqttUrl,
    api_port: u16,
    stop: &CancellationToken,
) -> LiveReadings {
    let live = LiveReadings::new(datastream_api::live::DEFAULT_CAPACITY);
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 6);
    let feed = LiveFeed {
        mqtt,
        client_id: format!("datastream-live-{api_port}-{suffix}"),
        limits: decode_limits(settings),
    };
    let (readings, alerts) = (live.clone(), live.clone());
    tokio::spawn(feed.run(
        move |r| readings.publish(r),
        move |n| alerts.publish_alert(n),
        stop.clone(),
    ));
    live
}
