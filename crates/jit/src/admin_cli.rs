//! `jit admin …`: administration from the command line, for the first
//! administrator and for scripts.

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Subcommand;
use jit_domain::membership::ADMIN_ROLE;
use jit_domain::user::{MAX_PASSWORD_LEN, Username};
use jit_primitives::clock::{Clock, SystemClock};
use jit_server::console::{CreateAdministratorError, create_administrator};
use jit_store::Store;

/// What `jit admin` does.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a local user who holds the `admin` role (the administrators
    /// of jit itself).
    CreateUser {
        /// The login name.
        #[arg(long)]
        username: String,
        /// Read the password from standard input (its first line). The only
        /// way to give it: a password on the command line would be seen by
        /// every user of the machine.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Runs `command` on `store` (migrated).
pub async fn run(store: Store, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser { username, password_stdin } => {
            if !password_stdin {
                bail!("give the password on standard input with --password-stdin");
            }
            let username = Username::new(&username).context("the username")?;
            let password = read_password()?;
            create_admin(&store, username, password).await
        }
    }
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() || password.len() > MAX_PASSWORD_LEN {
        bail!("the password must be 1 to {MAX_PASSWORD_LEN} bytes, on the first line of standard input");
    }
    Ok(password)
}

async fn create_admin(store: &Store, username: Username, password: String) -> anyhow::Result<()> {
    let user = match create_administrator(store, username, password, SystemClock.now()).await {
        Ok(user) => user,
        Err(CreateAdministratorError::UsernameTaken) => bail!("a user with this username exists already"),
        Err(other) => return Err(other).context("creating the administrator"),
    };
    println!("created user {} ({}) with the {ADMIN_ROLE} role", user.username, user.id);
    Ok(())
}
