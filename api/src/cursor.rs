//! Opaque, tamper-checked page cursors.
//!
//! A readings cursor is `base64url(order ‖ timestamp µs ‖ id ‖
//! HMAC-SHA256)`; a group cursor (aggregates, `/devices`) is
//! `base64url(kind ‖ key as JSON ‖ HMAC-SHA256)`. Both are keyed with the
//! token secret, so a client can hand one back but not forge or edit it
//! (which could otherwise be used to probe arbitrary positions or make the
//! server misread its own state), nor use one where another kind belongs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use datastream_domain::analytics::GroupKey;
use datastream_domain::{Order, PageCursor};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const PAYLOAD_LEN: usize = 1 + 8 + 8;
const TAG_LEN: usize = 32;

/// Signs and verifies cursors.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec")
    }
}

impl CursorCodec {
    /// A codec keyed with `secret` (the JWT secret), domain-separated so a
    /// cursor signature is never valid as anything else.
    pub fn new(secret: &[u8]) -> Self {
        let mut key = b"datastream cursor v1:".to_vec();
        key.extend_from_slice(secret);
        Self { key }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }

    /// Encodes the position after `cursor` for a query in `order`.
    pub fn encode(&self, cursor: PageCursor, order: Order) -> String {
        let mut bytes = Vec::with_capacity(PAYLOAD_LEN + TAG_LEN);
        bytes.push(match order {
            Order::Asc => b'a',
            Order::Desc => b'd',
        });
        bytes.extend_from_slice(&cursor.timestamp.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(&cursor.id.to_be_bytes());
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a cursor, checking its signature and that it was issued for
    /// the same order. `None` for anything else.
    pub fn decode(&self, text: &str, order: Order) -> Option<PageCursor> {
        if text.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() != PAYLOAD_LEN + TAG_LEN {
            return None;
        }
        let (payload, tag) = bytes.split_at(PAYLOAD_LEN);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(tag).ok()?;
        let expected = match order {
            Order::Asc => b'a',
            Order::Desc => b'd',
        };
        if payload[0] != expected {
            return None;
        }
        let micros = i64::from_be_bytes(payload[1..9].try_into().ok()?);
        let id = i64::from_be_bytes(payload[9..17].try_into().ok()?);
        Some(PageCursor {
            timestamp: DateTime::<Utc>::from_timestamp_micros(micros)?,
            id,
        })
    }
}

/// What a group cursor pages: aggregate groups of one grouping, or
/// devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupCursorKind {
    /// `/readings/aggregate?group_by=device`.
    ByDevice,
    /// `/readings/aggregate?group_by=sensor_type`.
    BySensorType,
    /// `/readings/aggregate?group_by=id1`.
    ById1,
    /// `/devices`.
    Devices,
}

impl GroupCursorKind {
    fn tag(self) -> u8 {
        match self {
            Self::ByDevice => b'D',
            Self::BySensorType => b'S',
            Self::ById1 => b'I',
            Self::Devices => b'V',
        }
    }
}

/// A group key as a cursor carries it.
#[derive(serde::Serialize, serde::Deserialize)]
struct KeyText(Option<String>, Option<String>, Option<i32>);

impl CursorCodec {
    /// Encodes the position after group (or device) `key`.
    pub fn encode_group(&self, kind: GroupCursorKind, key: &GroupKey) -> String {
        let mut bytes = vec![kind.tag()];
        let text = KeyText(key.sensor_type.clone(), key.id1.clone(), key.id2);
        // Plain strings and numbers: serializing cannot fail.
        let _ = serde_json::to_writer(&mut bytes, &text);
        let mut mac = self.mac();
        mac.update(&bytes);
        bytes.extend_from_slice(&mac.finalize().into_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Decodes a group cursor of `kind`, checking its signature. `None` for
    /// anything else.
    pub fn decode_group(&self, text: &str, kind: GroupCursorKind) -> Option<GroupKey> {
        if text.len() > 512 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < 1 + TAG_LEN {
            return None;
        }
        let (payload, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(payload);
        mac.verify_slice(tag).ok()?;
        if payload[0] != kind.tag() {
            return None;
        }
        let KeyText(sensor_type, id1, id2) = serde_json::from_slice(&payload[1..]).ok()?;
        Some(GroupKey {
            sensor_type,
            id1,
            id2,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor() -> PageCursor {
        PageCursor {
            timestamp: DateTime::<Utc>::from_timestamp_micros(1_795_000_000_123_456).unwrap(),
            id: 42,
        }
    }

    #[test]
    fn group_cursors_round_trip_and_only_for_their_kind() {
        let codec = CursorCodec::new(b"secret");
        let key = GroupKey {
            sensor_type: Some("temperature".into()),
            id1: Some("ABC".into()),
            id2: Some(7),
        };
        let text = codec.encode_group(GroupCursorKind::Devices, &key);
        assert_eq!(
            codec.decode_group(&text, GroupCursorKind::Devices),
            Some(key)
        );
        assert_eq!(codec.decode_group(&text, GroupCursorKind::ByDevice), None);
        assert_eq!(
            CursorCodec::new(b"other").decode_group(&text, GroupCursorKind::Devices),
            None
        );
        let readings = codec.encode(cursor(), Order::Asc);
        assert_eq!(
            codec.decode_group(&readings, GroupCursorKind::Devices),
            None
        );
    }

    #[test]
    fn round_trips() {
        let codec = CursorCodec::new(b"secret");
        let text = codec.encode(cursor(), Order::Desc);
        assert_eq!(codec.decode(&text, Order::Desc), Some(cursor()));
    }

    #[test]
    fn a_tampered_cursor_is_refused() {
        let codec = CursorCodec::new(b"secret");
        let text = codec.encode(cursor(), Order::Asc);
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        bytes[10] ^= 1;
        assert_eq!(
            codec.decode(&URL_SAFE_NO_PAD.encode(bytes), Order::Asc),
            None
        );
    }

    #[test]
    fn another_key_or_order_or_garbage_is_refused() {
        let text = CursorCodec::new(b"secret").encode(cursor(), Order::Asc);
        assert_eq!(CursorCodec::new(b"other").decode(&text, Order::Asc), None);
        assert_eq!(CursorCodec::new(b"secret").decode(&text, Order::Desc), None);
        for junk in ["", "abc", "!!!!", &"A".repeat(500)] {
            assert_eq!(CursorCodec::new(b"secret").decode(junk, Order::Asc), None);
        }
    }
}
