//! Webhook delivery: one signed POST per attempt.
//!
//! The body is the notification's JSON; `X-Datastream-Signature` is
//! `sha256=` and the hex HMAC-SHA256 of the body under the rule's secret;
//! `X-Datastream-Notification` is the notification id (the same on every
//! attempt, for de-duplication).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;

/// Longest a receiver may take to answer one attempt.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a notification is retried before it is given up.
pub const RETRY_FOR: chrono::Duration = chrono::Duration::hours(1);

/// The signature header's value for `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The pause before attempt `attempt + 1`: 1 s, doubling, at most a minute.
pub fn backoff(attempt: i32) -> chrono::Duration {
    let exponent = attempt.clamp(1, 7) - 1;
    chrono::Duration::seconds((1i64 << exponent).min(60))
}

/// POSTs `body`; `Ok` with the status line when the receiver answered
/// 2xx, `Err` with what happened otherwise.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    notification_id: i64,
    body: Vec<u8>,
) -> Result<String, String> {
    let response = http
        .post(url)
        .timeout(ATTEMPT_TIMEOUT)
        .header("content-type", "application/json")
        .header("x-datastream-signature", signature(secret, &body))
        .header("x-datastream-notification", notification_id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status();
    let line = format!("HTTP {}", status.as_u16());
    if status.is_success() {
        Ok(line)
    } else {
        Err(line)
    }
}

fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect".into()
    } else {
        let mut text = error.to_string();
        text.truncate(200);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_to_a_minute() {
        let secs: Vec<i64> = (1..=9).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
