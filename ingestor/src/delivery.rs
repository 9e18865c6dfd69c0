//! `Delivery`: one received MQTT message on its way from the receiver to the
//! batch writer, already decoded.

use crate::dead_letter::DeadLetter;
use datastream_domain::{DecodeError, Reading};
use rumqttc::Publish;
use std::time::Instant;

/// A received message, decoded, with what is needed to acknowledge it.
#[derive(Debug)]
pub struct Delivery {
    /// The message without its payload: rumqttc acks by packet id and QoS.
    pub ack: Publish,
    /// When it arrived.
    pub received: Instant,
    /// Its readings, or why it is a dead letter (and the dead letter).
    pub content: Content,
}

/// What a message turned out to hold.
#[derive(Debug)]
pub enum Content {
    /// Valid readings to store.
    Readings(Vec<Reading>),
    /// A message to dead-letter.
    Rejected {
        /// Why it was rejected.
        reason: DecodeError,
        /// What to publish: a bounded excerpt of the payload, not the
        /// payload itself, which is dropped as soon as this is built.
        letter: DeadLetter,
    },
}
