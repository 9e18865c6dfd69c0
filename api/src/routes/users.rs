//! `/api/v1/users`: list, create and delete users (admins only).

use crate::auth::hash_password;
use crate::state::AppState;
use crate::MIN_PASSWORD_LEN;
use actix_web::{web, HttpResponse};
use datastream_domain::{leaves_no_admin, AccountChange, Role, StoreError, Username};
use datastream_http::error::{ApiError, ErrorBody};
use datastream_http::openapi::NotAnAdmin;
use datastream_http::Admin;
use datastream_http::JsonBody;
use serde::{Deserialize, Serialize};

/// A user as the API shows it (never the hash).
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UserDto {
    /// Login name, in lower case.
    #[schema(pattern = r"^[a-z0-9_.-]{1,64}$")]
    pub username: String,
    /// What the user may do.
    pub role: RoleDto,
}

/// What a user may do: viewers read, admins also write and manage users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleDto {
    /// Reads, edits, deletes, manages users.
    Admin,
    /// Reads only.
    Viewer,
}

impl From<RoleDto> for Role {
    fn from(role: RoleDto) -> Self {
        match role {
            RoleDto::Admin => Role::Admin,
            RoleDto::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for RoleDto {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => RoleDto::Admin,
            Role::Viewer => RoleDto::Viewer,
        }
    }
}

/// Body of `POST /api/v1/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name, compared without case and kept in lower case.
    #[schema(pattern = r"^[A-Za-z0-9_.-]{1,64}$", example = "alice")]
    pub username: String,
    /// At least 8 characters, at most 1024.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// What the user may do.
    pub role: RoleDto,
}

/// Every user (admin).
#[utoipa::path(get, path = "/api/v1/users", operation_id = "list_users", tag = "users",
    responses(
        (status = 200, description = "All users", body = Vec<UserDto>),
        NotAnAdmin,
    ))]
pub async fn list(_admin: Admin, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let users: Vec<UserDto> = state
        .store
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserDto {
            username: u.username.to_string(),
            role: u.role.into(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(users))
}

/// Creates a user (admin); 409 if the name is taken.
#[utoipa::path(post, path = "/api/v1/users", operation_id = "create_user", tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserDto),
        (status = 400, description = "Bad field, named", body = ErrorBody),
        NotAnAdmin,
        (status = 409, description = "The username exists", body = ErrorBody),
        (status = 503, description = "Too many password operations at once; `Retry-After` says when to try again", body = ErrorBody),
    ))]
pub async fn create(
    user: Admin,
    state: web::Data<AppState>,
    body: JsonBody<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let NewUser {
        username,
        password,
        role,
    } = body.into_inner();
    let name =
        Username::parse(&username).map_err(|e| ApiError::bad_request("username", e.to_string()))?;
    let role = Role::from(role);
    validate_password(&password)?;
    let hash = state
        .passwords
        .run(move || hash_password(&password))
        .await
        .map_err(|_| ApiError::Busy(1))?
        .map_err(ApiError::Internal)?;
    match state.store.create_user(&name, &hash, role).await {
        Err(StoreError::Conflict) => {
            return Err(ApiError::Conflict(format!("user {name} already exists")))
        }
        other => other?,
    }
    state.users.forget(name.as_str());
    tracing::info!(by = %user.username, username = %name, %role, "user created");
    Ok(HttpResponse::Created().json(UserDto {
        username: name.to_string(),
        role: role.into(),
    }))
}

/// Deletes a user (admin); their tokens stop working. The last admin cannot
/// be deleted (nobody could manage users any more), nor the caller's own
/// account.
#[utoipa::path(delete, path = "/api/v1/users/{username}", operation_id = "delete_user", tag = "users",
    params(("username" = String, Path, description = "The user to delete (compared without case)", pattern = r"^[A-Za-z0-9_.-]{1,64}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a user name", body = ErrorBody),
        NotAnAdmin,
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The last admin, or the caller's own account", body = ErrorBody),
    ))]
pub async fn delete(
    user: Admin,
    state: web::Data<AppState>,
    username: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name =
        Username::parse(&username).map_err(|e| ApiError::bad_request("username", e.to_string()))?;
    if name.as_str() == user.username {
        // Another admin may remove this account; its own token may not, so
        // an admin cannot lock themselves out by mistake.
        return Err(ApiError::Conflict(
            "cannot delete the account you are logged in as".into(),
        ));
    }
    let users = state.store.list_users().await?;
    let Some(target) = users.iter().find(|u| u.username == name) else {
        return Err(ApiError::NotFound(format!("no user {name}")));
    };
    if leaves_no_admin(&users, &target.username, AccountChange::Delete) {
        return Err(ApiError::Conflict("cannot delete the last admin".into()));
    }
    if !state.store.delete_user(&name).await? {
        return Err(ApiError::NotFound(format!("no user {name}")));
    }
    state.users.forget(name.as_str());
    tracing::info!(by = %user.username, username = %name, "user deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Body of `PATCH /api/v1/users/{username}`: what to change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// The new role.
    pub role: Option<RoleDto>,
    /// A new password, 8 to 1024 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
}

/// Changes a user's role or password (admin). The last admin cannot be
/// demoted, nor the caller's own role changed; tokens already issued keep
/// working until they expire, with the new role within seconds.
#[utoipa::path(patch, path = "/api/v1/users/{username}", operation_id = "update_user", tag = "users",
    params(("username" = String, Path, description = "The user to change (compared without case)", pattern = r"^[A-Za-z0-9_.-]{1,64}$")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The user as changed", body = UserDto),
        (status = 400, description = "Bad field, named; or nothing to change", body = ErrorBody),
        NotAnAdmin,
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "The last admin, or the caller's own role", body = ErrorBody),
        (status = 503, description = "Too many password operations at once; `Retry-After` says when to try again", body = ErrorBody),
    ))]
pub async fn update(
    user: Admin,
    state: web::Data<AppState>,
    username: web::Path<String>,
    body: JsonBody<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let name =
        Username::parse(&username).map_err(|e| ApiError::bad_request("username", e.to_string()))?;
    let UserPatch { role, password } = body.into_inner();
    if role.is_none() && password.is_none() {
        return Err(ApiError::bad_request(
            "role",
            "give a role, a password or both".to_owned(),
        ));
    }
    if let Some(password) = &password {
        validate_password(password)?;
    }
    let users = state.store.list_users().await?;
    let Some(target) = users.iter().find(|u| u.username == name) else {
        return Err(ApiError::NotFound(format!("no user {name}")));
    };
    let mut new_role = target.role;
    if let Some(role) = role.map(Role::from) {
        if role != target.role && name.as_str() == user.username {
            return Err(ApiError::Conflict(
                "cannot change the role of the account you are logged in as".into(),
            ));
        }
        if leaves_no_admin(&users, &name, AccountChange::SetRole(role)) {
            return Err(ApiError::Conflict("cannot demote the last admin".into()));
        }
        new_role = role;
    }
    if let Some(password) = password {
        let hash = state
            .passwords
            .run(move || hash_password(&password))
            .await
            .map_err(|_| ApiError::Busy(1))?
            .map_err(ApiError::Internal)?;
        if !state.store.set_password(&name, &hash).await? {
            return Err(ApiError::NotFound(format!("no user {name}")));
        }
    }
    if new_role != target.role && !state.store.set_role(&name, new_role).await? {
        return Err(ApiError::NotFound(format!("no user {name}")));
    }
    state.users.forget(name.as_str());
    tracing::info!(by = %user.username, username = %name, role = %new_role, "user changed");
    Ok(HttpResponse::Ok().json(UserDto {
        username: name.to_string(),
        role: new_role.into(),
    }))
}

/// Longest password accepted for a user, in characters.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// Checks a new password's length (in characters), naming the field.
pub fn validate_password(password: &str) -> Result<(), ApiError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(ApiError::bad_request(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(ApiError::bad_request(
            "password",
            format!("must be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}
