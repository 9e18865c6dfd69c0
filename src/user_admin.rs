//! `datastream user …`: managing API users from the command line, for the
//! first admin on a fresh database or when no admin can log in.

use crate::settings::Settings;
use crate::system::open_store;
use anyhow::{bail, Context, Result};
use datastream_api::auth::hash_password;
use datastream_api::routes::users::validate_password;
use datastream_schema::{Role, StoreError, Username};
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
