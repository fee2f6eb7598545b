//! `strom user create|delete|list`: SCRAM credentials through Kafka's own APIs
//! (AlterUserScramCredentials, DescribeUserScramCredentials), so it manages the users
//! of any Kafka-protocol broker. librdkafka salts and hashes the password; the password
//! itself is never sent, printed or logged.

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand};

use crate::admin_ffi::AdminApi;
use crate::admin_types::{AdminError, ScramAlteration, ScramMechanism};
use crate::client::Connection;
use crate::table::{flag_name, Table};

/// The longest password read from stdin, in bytes.
const PASSWORD_BYTES_MAX: u64 = 1024;

/// `strom user …`: manage SCRAM users.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom user create alice --password-stdin < alice.password
  strom user create app --password 's3cret' --mechanism SCRAM-SHA-256 --iterations 4096
  strom user list
  strom user delete alice
Connect as a user allowed to alter the cluster, e.g.
  -X security.protocol=sasl_plaintext -X sasl.mechanism=SCRAM-SHA-512 \\
  -X sasl.username=admin -X sasl.password=…")]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user, or replace its credential of one mechanism.
    #[command(group(ArgGroup::new("secret").required(true).args(["password", "password_stdin"])))]
    Create {
        /// User name.
        name: String,
        /// The password (visible to other local users and kept in shell history:
        /// prefer --password-stdin).
        #[arg(long)]
        password: Option<Password>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// SCRAM mechanism of the credential.
        #[arg(long, value_enum, ignore_case = true, default_value = "SCRAM-SHA-512")]
        mechanism: ScramMechanism,
        /// PBKDF2 iterations (Kafka accepts 4096 to 16384).
        #[arg(long, default_value_t = 8192,
              value_parser = clap::value_parser!(i32).range(4096..=16384))]
        iterations: i32,
    },
    /// Delete a user's credentials: of one mechanism, or all of them.
    Delete {
        /// User name.
        name: String,
        /// Only the credential of this mechanism.
        #[arg(long, value_enum, ignore_case = true)]
        mechanism: Option<ScramMechanism>,
    },
    /// List users with their mechanisms and iteration counts.
    List {
        /// Only these users (default: all).
        names: Vec<String>,
    },
}

/// A password given on the command line; `Debug` does not show it.
#[derive(Clone)]
struct Password(String);

impl From<String> for Password {
    fn from(text: String) -> Self {
        Password(text)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(…)")
    }
}

/// Runs a `strom user` command.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    let api = AdminApi::new(connection.admin()?, connection.timeout());
    match args.command {
        UserCommand::Create {
            name,
            password,
            password_stdin: _,
            mechanism,
            iterations,
        } => {
            let password = match password {
                Some(Password(text)) => text,
                None => password_from(std::io::stdin().lock())?,
            };
            create(&api, name, password, mechanism, iterations)
        }
        UserCommand::Delete { name, mechanism } => delete(&api, name, mechanism),
        UserCommand::List { names } => list(&api, &names),
    }
}

fn create(
    api: &AdminApi,
    user: String,
    password: String,
    mechanism: ScramMechanism,
    iterations: i32,
) -> anyhow::Result<()> {
    if password.is_empty() {
        bail!("the password is empty");
    }
    let upsert = ScramAlteration::Upsert {
        user: user.clone(),
        mechanism,
        iterations,
        password: password.into_bytes(),
    };
    let answers = api
        .alter_users(&[upsert])
        .with_context(|| format!("cannot create user {user}"))?;
    all_ok(answers, &user).with_context(|| format!("cannot create user {user}"))?;
    println!(
        "set the {} credential of user {user} ({iterations} iterations)",
        flag_name(mechanism)
    );
    Ok(())
}

fn delete(api: &AdminApi, user: String, mechanism: Option<ScramMechanism>) -> anyhow::Result<()> {
    let mechanisms = match mechanism {
        Some(mechanism) => vec![mechanism],
        None => credentials(api, std::slice::from_ref(&user))?
            .into_iter()
            .map(|(_, mechanism, _)| mechanism)
            .collect(),
    };
    let deletions: Vec<ScramAlteration> = mechanisms
        .iter()
        .map(|&mechanism| ScramAlteration::Delete {
            user: user.clone(),
            mechanism,
        })
        .collect();
    let answers = api
        .alter_users(&deletions)
        .with_context(|| format!("cannot delete user {user}"))?;
    all_ok(answers, &user).with_context(|| format!("cannot delete user {user}"))?;
    for mechanism in mechanisms {
        println!(
            "deleted the {} credential of user {user}",
            flag_name(mechanism)
        );
    }
    Ok(())
}

fn list(api: &AdminApi, users: &[String]) -> anyhow::Result<()> {
    // librdkafka refuses a request that names a user twice.
    let mut users = users.to_vec();
    users.sort_unstable();
    users.dedup();
    let mut table = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
    for (user, mechanism, iterations) in credentials(api, &users)? {
        table.row(vec![user, flag_name(mechanism), iterations.to_string()]);
    }
    print!("{}", table.render());
    Ok(())
}

/// (user, mechanism, iterations) of `users` (all if empty), sorted; a user the broker
/// cannot describe (unknown, or without credentials) is an error.
fn credentials(
    api: &AdminApi,
    users: &[String],
) -> anyhow::Result<Vec<(String, ScramMechanism, i32)>> {
    let descriptions = api.describe_users(users).context("cannot describe users")?;
    let mut rows = Vec::new();
    for description in descriptions {
        let credentials = description
            .credentials
            .with_context(|| format!("cannot describe user {}", description.user))?;
        rows.extend(
            credentials
                .into_iter()
                .map(|c| (description.user.clone(), c.mechanism, c.iterations)),
        );
    }
    rows.sort_unstable();
    Ok(rows)
}

/// Checks that the broker answered for `user` and that no answer is an error.
fn all_ok(answers: Vec<(String, Result<(), AdminError>)>, user: &str) -> anyhow::Result<()> {
    if !answers.iter().any(|(name, _)| name == user) {
        bail!("the broker did not answer for user {user}");
    }
    for (_, answer) in answers {
        answer?;
    }
    Ok(())
}

/// The first line of `input` without its line ending, read up to
/// [`PASSWORD_BYTES_MAX`] bytes.
fn password_from(input: impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .take(PASSWORD_BYTES_MAX + 1)
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.len() as u64 > PASSWORD_BYTES_MAX {
        bail!("the password on stdin is longer than {PASSWORD_BYTES_MAX} bytes");
    }
    if password.is_empty() {
        bail!("no password on stdin");
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_without_its_ending() {
        let read = |text: &str| password_from(text.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(read("s3cret\r\nmore\n"), Ok("s3cret".to_owned()));
        assert_eq!(read("with spaces \n"), Ok("with spaces ".to_owned()));
        assert_eq!(read("no newline"), Ok("no newline".to_owned()));
        assert_eq!(read("\n"), Err("no password on stdin".to_owned()));
        assert_eq!(read(""), Err("no password on stdin".to_owned()));
        let long = "x".repeat(PASSWORD_BYTES_MAX as usize + 1);
        assert_eq!(
            read(&long),
            Err("the password on stdin is longer than 1024 bytes".to_owned())
        );
        assert_eq!(read(&long[1..]), Ok(long[1..].to_owned()));
    }

    #[test]
    fn mechanisms_print_as_kafka_names_them() {
        assert_eq!(flag_name(ScramMechanism::Sha256), "SCRAM-SHA-256");
        assert_eq!(flag_name(ScramMechanism::Sha512), "SCRAM-SHA-512");
    }
}
