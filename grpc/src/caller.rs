//! Who is calling: the bearer token in the `authorization` metadata, checked
//! by the same [`TokenVerifier`] as the REST API's, as gRPC statuses.

use datastream_domain::Role;
use datastream_http::{Authenticated, AuthenticationError, TokenVerifier};
use tonic::metadata::MetadataMap;
use tonic::Status;

/// The caller, or `UNAUTHENTICATED` (no token, a bad or expired one, a
/// deleted account) or `UNAVAILABLE` (the account directory failed).
pub(crate) async fn any_user(
    verifier: &TokenVerifier,
    metadata: &MetadataMap,
) -> Result<Authenticated, Status> {
    // Metadata that is not text is as good as none.
    let header = metadata
        .get("authorization")
        .map(|value| value.to_str().unwrap_or_default());
    verifier
        .authenticate(header)
        .await
        .map_err(|error| match error {
            AuthenticationError::Refused(refusal) => Status::unauthenticated(refusal.to_string()),
            AuthenticationError::Store(error) => {
                tracing::warn!(%error, "could not check a gRPC caller's account");
                Status::unavailable("the account directory is unavailable; try again")
            }
        })
}

/// The caller if allowed to publish readings (admins), else
/// `PERMISSION_DENIED`.
pub(crate) async fn publisher(
    verifier: &TokenVerifier,
    metadata: &MetadataMap,
) -> Result<Authenticated, Status> {
    let caller = any_user(verifier, metadata).await?;
    match caller.role {
        Role::Admin => Ok(caller),
        Role::Viewer => Err(Status::permission_denied(
            "publishing readings needs the admin role",
        )),
    }
}

/// How long until the token expires (a stream ends then).
pub(crate) fn time_left(caller: &Authenticated) -> std::time::Duration {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    std::time::Duration::from_secs(caller.expires_at.saturating_sub(now))
}
