//! `go_example users ...`: accounts as an operator manages them, on the configured database
//! (docs/security.md). This is how the first admin is made: register the user (or import it),
//! then `go_example users grant-admin NAME`. Every change ends the user's logins and leaves an
//! audit record (actor `cli`).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use shaku::HasComponent;
use slog::Logger;

use crate::cmd::describe;
use crate::meta::config::AppConfig;
use crate::model::role::Role;
use crate::service::account::AccountService;
use crate::service::audit::Actor;
use crate::service::error::ServiceError;

/// What `go_example users` does.
#[derive(Debug, clap::Subcommand)]
pub enum UsersCommand {
    /// List users with their roles, by id.
    List {
        /// Only users with ids above this one (the next page: the last id shown).
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Users shown at most.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=10_000))]
        limit: i64,
    },
    /// Give the user the admin role (the Excel import and export, the Jenkins routes, any user
    /// over gRPC). Ends the user's logins: the role is in tokens signed from the next login.
    GrantAdmin {
        /// The username.
        name: String,
    },
    /// Take the admin role from the user. Ends the user's logins.
    RevokeAdmin {
        /// The username.
        name: String,
    },
    /// Set the user's password, read from standard input (one line; never from the command
    /// line, where other users of the machine see it), or made up and printed with
    /// `--generate`. Ends the user's logins.
    ResetPassword {
        /// The username.
        name: String,
        /// Make up a password (16 letters and digits) and print it.
        #[arg(long)]
        generate: bool,
    },
    /// End the user's logins on every device and in every process.
    SignOut {
        /// The username.
        name: String,
    },
}

/// Runs `command`; what it did goes to standard output.
///
/// # Errors
/// The database failed, the user does not exist, the password is refused.
pub async fn run(config: &AppConfig, logger: &Logger, command: UsersCommand) -> anyhow::Result<()> {
    // Read before connecting: a refused password costs no connection.
    let password = match &command {
        UsersCommand::ResetPassword { generate: true, .. } => Some(generated_password()),
        UsersCommand::ResetPassword { .. } => Some(read_password()?),
        _ => None,
    };
    let (infra, module) = crate::cmd::assemble(config, logger).await?;
    let accounts: &dyn AccountService = module.resolve_ref();
    let actor = Actor::cli();
    let outcome = async {
        match command {
            UsersCommand::List { after, limit } => {
                let page = accounts.list(after, limit).await.map_err(describe)?;
                let mut out = std::io::stdout().lock();
                writeln!(
                    out,
                    "{:>8}  {:<30}  {:<12}  created_at",
                    "id", "username", "roles"
                )?;
                for user in &page {
                    let roles = if user.roles.is_empty() {
                        "-".to_owned()
                    } else {
                        user.roles.join(",")
                    };
                    writeln!(
                        out,
                        "{:>8}  {:<30}  {:<12}  {}",
                        user.id, user.username, roles, user.created_at
                    )?;
                }
                if let Some(last) = page.last().filter(|_| page.len() as i64 == limit) {
                    writeln!(out, "(more: --after {})", last.id)?;
                }
            }
            UsersCommand::GrantAdmin { name } => {
                let changed = accounts
                    .grant(&actor, &name, Role::Admin)
                    .await
                    .map_err(|e| about(&name, e))?;
                println!(
                    "{name}: {}",
                    if changed {
                        "admin granted; signed out everywhere"
                    } else {
                        "already an admin"
                    }
                );
            }
            UsersCommand::RevokeAdmin { name } => {
                let changed = accounts
                    .revoke(&actor, &name, Role::Admin)
                    .await
                    .map_err(|e| about(&name, e))?;
                println!(
                    "{name}: {}",
                    if changed {
                        "admin revoked; signed out everywhere"
                    } else {
                        "was not an admin"
                    }
                );
            }
            UsersCommand::ResetPassword { name, generate } => {
                let password = password.unwrap_or_default();
                accounts
                    .reset_password(&actor, &name, password.clone())
                    .await
                    .map_err(|e| about(&name, e))?;
                if generate {
                    println!("{name}: password reset to {password}; signed out everywhere");
                } else {
                    println!("{name}: password reset; signed out everywhere");
                }
            }
            UsersCommand::SignOut { name } => {
                accounts
                    .sign_out(&actor, &name)
                    .await
                    .map_err(|e| about(&name, e))?;
                println!("{name}: signed out everywhere");
            }
        }
        Ok::<(), anyhow::Error>(())
    }
    .await;
    infra.close().await;
    outcome
}

/// One line of standard input, prompted for on a terminal.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("new password (6-16 letters and digits, with both; shown as typed): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (or use --generate)");
    }
    Ok(password)
}

/// 16 letters and digits from the OS CSPRNG, with at least one of each (the password rule).
fn generated_password() -> String {
    const LETTERS: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGITS: &[u8] = b"23456789";
    loop {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        let password: String = bytes
            .iter()
            .map(|b| {
                let all = [LETTERS, DIGITS].concat();
                all[usize::from(*b) % all.len()] as char
            })
            .collect();
        if password.chars().any(|c| c.is_ascii_digit())
            && password.chars().any(|c| c.is_ascii_alphabetic())
        {
            return password;
        }
    }
}

fn about(name: &str, e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no user is named {name}"),
        other => describe(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_pass_the_password_rule() {
        for _ in 0..200 {
            let password = generated_password();
            assert_eq!(password.len(), 16);
            crate::meta::validator::validate_password(&password).unwrap();
        }
    }
}
