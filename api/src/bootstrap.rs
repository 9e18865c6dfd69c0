//! First start: create the admin when no user exists.

use crate::auth::hash_password;
use datastream_domain::{Role, StoreError, Username};
use datastream_http::ApiError;
use datastream_store::SharedStore;
use rand::distr::{Alphanumeric, SampleString};

/// What [`ensure_admin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// Users already existed; nothing was created.
    Existing,
    /// The admin was created with the configured password.
    Created {
        /// Its username.
        username: String,
    },
    /// The admin was created with a generated password, shown only now.
    CreatedWithGeneratedPassword {
        /// Its username.
        username: String,
        /// The generated password.
        password: String,
    },
}

/// Creates the admin user if the users table is empty. With no configured
/// password, one is generated and returned so the caller can print it once.
pub async fn ensure_admin(
    store: &SharedStore,
    username: &str,
    password: Option<&str>,
) -> Result<AdminBootstrap, ApiError> {
    if store.count_users().await? > 0 {
        return Ok(AdminBootstrap::Existing);
    }
    let name = Username::parse(username)
        .map_err(|e| ApiError::bad_request("ADMIN_USERNAME", e.to_string()))?;
    let generated = password.is_none();
    let password = match password {
        Some(p) => p.to_owned(),
        None => Alphanumeric.sample_string(&mut rand::rng(), 24),
    };
    if password.len() < crate::MIN_PASSWORD_LEN {
        return Err(ApiError::bad_request(
            "ADMIN_PASSWORD",
            format!("must be at least {} characters", crate::MIN_PASSWORD_LEN),
        ));
    }
    let to_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&to_hash))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::Internal)?;
    match store.create_user(&name, &hash, Role::Admin).await {
        // Another replica won the race to create it: fine.
        Err(StoreError::Conflict) => return Ok(AdminBootstrap::Existing),
        other => other?,
    }
    let username = name.to_string();
    Ok(if generated {
        AdminBootstrap::CreatedWithGeneratedPassword { username, password }
    } else {
        AdminBootstrap::Created { username }
    })
}
