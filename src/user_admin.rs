//! `datastream user …`: managing API users from the command line, for the
//! first admin on a fresh database or when no admin can log in.

use crate::settings::Settings;
use crate::system::open_store;
use anyhow::{bail, Context, Result};
use datastream_api::auth::hash_password;
use datastream_api::auth::USER_CACHE_TTL;
use datastream_api::routes::users::validate_password;
use datastream_domain::{leaves_no_admin, AccountChange, Role, StoreError, Username};
use std::io::{BufRead, IsTerminal, Write};

/// Creates a user with a password read from standard input (prompted for
/// on a terminal; piped otherwise, e.g. `printf '%s\n' "$PW" | datastream user add …`).
pub async fn add(settings: &Settings, username: &str, role: &str) -> Result<()> {
    let name = Username::parse(username).context("invalid username")?;
    let role = Role::parse(role).context("invalid role")?;
    // Off the async workers, so Ctrl-C at the prompt can end the command.
    let prompt = format!("Password for {name}: ");
    let password = tokio::task::spawn_blocking(move || read_password(&prompt)).await??;
    validate_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = open_store(settings).await?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    match store.create_user(&name, &hash, role).await {
        Err(StoreError::Conflict) => bail!("user {name} already exists"),
        other => other?,
    }
    eprintln!("created {role} {name}");
    Ok(())
}

/// Replaces a user's password with one read from standard input: the way
/// back in for a forgotten admin password (`ADMIN_PASSWORD` only creates
/// the first admin).
pub async fn set_password(settings: &Settings, username: &str) -> Result<()> {
    let name = Username::parse(username).context("invalid username")?;
    let store = open_store(settings).await?;
    if store.find_user(&name).await?.is_none() {
        bail!("no user {name} (datastream user list shows who exists)");
    }
    let prompt = format!("New password for {name}: ");
    let password = tokio::task::spawn_blocking(move || read_password(&prompt)).await??;
    validate_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await?
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    if !store.set_password(&name, &hash).await? {
        bail!("no user {name}");
    }
    eprintln!("password of {name} changed");
    Ok(())
}

/// Gives a user another role; the last admin cannot be demoted.
pub async fn set_role(settings: &Settings, username: &str, role: &str) -> Result<()> {
    let name = Username::parse(username).context("invalid username")?;
    let role = Role::parse(role).context("invalid role")?;
    let store = open_store(settings).await?;
    let users = store.list_users().await?;
    if !users.iter().any(|u| u.username == name) {
        bail!("no user {name} (datastream user list shows who exists)");
    }
    if leaves_no_admin(&users, &name, AccountChange::SetRole(role)) {
        bail!("{name} is the last admin: make another user admin first");
    }
    if !store.set_role(&name, role).await? {
        bail!("no user {name}");
    }
    eprintln!(
        "{name} is now {role} (running APIs apply it within {} s)",
        USER_CACHE_TTL.as_secs()
    );
    Ok(())
}

/// Deletes a user; the last admin cannot be deleted.
pub async fn delete(settings: &Settings, username: &str) -> Result<()> {
    let name = Username::parse(username).context("invalid username")?;
    let store = open_store(settings).await?;
    let users = store.list_users().await?;
    if !users.iter().any(|u| u.username == name) {
        bail!("no user {name} (datastream user list shows who exists)");
    }
    if leaves_no_admin(&users, &name, AccountChange::Delete) {
        bail!("{name} is the last admin: make another user admin first");
    }
    if !store.delete_user(&name).await? {
        bail!("no user {name}");
    }
    eprintln!(
        "deleted {name} (their tokens stop working within {} s)",
        USER_CACHE_TTL.as_secs()
    );
    Ok(())
}

/// Prints every user and their role.
pub async fn list(settings: &Settings) -> Result<()> {
    let store = open_store(settings).await?;
    let mut out = std::io::stdout().lock();
    for user in store.list_users().await? {
        writeln!(out, "{}\t{}", user.username, user.role)?;
    }
    Ok(())
}

fn read_password(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password given on standard input");
    }
    Ok(password)
}
