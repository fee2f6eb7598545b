//! `strom schema`: the schema registry from the command line, against strom's or any
//! Confluent-compatible registry (REST, no Kafka client needed).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Value};
use strom_registry::client::{ClientConfig, RegistryClient};
use strom_registry::types::{SchemaInput, SchemaReference, SchemaType};

/// `strom schema …`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  strom schema register rides-value --file ride.avsc
  strom schema register rides-proto --file ride.proto --type protobuf
  strom schema get rides-value                  # the latest version
  strom schema get --id 3
  strom schema list                             # subjects
  strom schema list rides-value                 # versions of a subject
  strom schema check rides-value --file ride-v2.avsc
  strom schema config rides-value --set FULL
  strom schema delete rides-value --version 1 [--permanent]")]
pub struct SchemaArgs {
    /// The registry's URL.
    #[arg(
        long,
        global = true,
        env = "STROM_SCHEMA_REGISTRY",
        default_value = "http://127.0.0.1:8081"
    )]
    registry: String,
    /// HTTP Basic credentials, USER:PASSWORD (prefer the environment variable).
    #[arg(
        long,
        global = true,
        env = "STROM_SCHEMA_REGISTRY_AUTH",
        hide_env_values = true
    )]
    basic_auth: Option<String>,
    /// PEM file of the CA to trust for an https:// registry [default: the system's].
    #[arg(long, global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: SchemaCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Avro,
    Json,
    Protobuf,
}

impl From<Format> for SchemaType {
    fn from(format: Format) -> Self {
        match format {
            Format::Avro => SchemaType::Avro,
            Format::Json => SchemaType::Json,
            Format::Protobuf => SchemaType::Protobuf,
        }
    }
}

/// A schema from a file, as `register` and `check` take it.
#[derive(Debug, Args)]
struct SchemaFile {
    /// The schema file (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// Its format.
    #[arg(long = "type", value_enum, default_value = "avro")]
    schema_type: Format,
    /// A reference, NAME=SUBJECT:VERSION (repeatable).
    #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
    references: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Register a schema under a subject; prints its global id.
    Register {
        /// The subject.
        subject: String,
        #[command(flatten)]
        schema: SchemaFile,
        /// Ask the registry to normalize the schema first.
        #[arg(long)]
        normalize: bool,
    },
    /// Print a subject's version (default: the latest) or a schema by id.
    Get {
        /// The subject (not with --id).
        #[arg(required_unless_present = "id", conflicts_with = "id")]
        subject: Option<String>,
        /// The version: a number or `latest`.
        #[arg(long, default_value = "latest")]
        version: String,
        /// A global schema id.
        #[arg(long)]
        id: Option<i32>,
        /// Print only the schema text.
        #[arg(long)]
        schema_only: bool,
    },
    /// List subjects, or the versions of one subject.
    List {
        /// The subject whose versions to list.
        subject: Option<String>,
        /// Include soft-deleted subjects or versions.
        #[arg(long)]
        deleted: bool,
        /// Only subjects starting with this.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Delete a subject or one of its versions (soft; then --permanent).
    Delete {
        /// The subject.
        subject: String,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Delete permanently (the subject or version must be soft-deleted first).
        #[arg(long)]
        permanent: bool,
    },
    /// Check a schema against a subject under its compatibility level; fails if it is
    /// incompatible.
    Check {
        /// The subject.
        subject: String,
        #[command(flatten)]
        schema: SchemaFile,
        /// Only against this version (default: what a registration checks).
        #[arg(long)]
        version: Option<String>,
    },
    /// Print or set the compatibility level of a subject or (without one) the global
    /// level.
    Config {
        /// The subject.
        subject: Option<String>,
        /// NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or
        /// FULL_TRANSITIVE.
        #[arg(long, value_name = "LEVEL")]
        set: Option<String>,
    },
}

fn read_schema(file: &SchemaFile) -> anyhow::Result<SchemaInput> {
    let schema = if file.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the schema from stdin")?
    } else {
        std::fs::read_to_string(&file.file)
            .with_context(|| format!("cannot read {}", file.file.display()))?
    };
    let references = file
        .references
        .iter()
        .map(|text| {
            let parsed = text.split_once('=').and_then(|(name, rest)| {
                let (subject, version) = rest.rsplit_once(':')?;
                Some(SchemaReference {
                    name: name.to_owned(),
                    subject: subject.to_owned(),
                    version: version.parse().ok()?,
                })
            });
            parsed.with_context(|| format!("--reference {text}: expected NAME=SUBJECT:VERSION"))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(SchemaInput {
        schema,
        schema_type: file.schema_type.into(),
        references,
    })
}

fn print(value: &Value) {
    match value {
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::String(s) => println!("{s}"),
                    other => println!("{other}"),
                }
            }
        }
        other => println!("{other}"),
    }
}

/// Runs `strom schema …`.
pub fn run(args: SchemaArgs) -> anyhow::Result<()> {
    let basic_auth = match &args.basic_auth {
        Some(text) => {
            let (user, password) = text
                .split_once(':')
                .context("--basic-auth: expected USER:PASSWORD")?;
            Some((user.to_owned(), password.to_owned()))
        }
        None => None,
    };
    let client = RegistryClient::new(&ClientConfig {
        url: args.registry.clone(),
        basic_auth,
        ca_file: args.ca_file.clone(),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(execute(&client, args.command))
}

async fn execute(client: &RegistryClient, command: SchemaCommand) -> anyhow::Result<()> {
    use strom_registry::client::rest::encode_segment as seg;
    use strom_registry::client::Method as method;
    match command {
        SchemaCommand::Register {
            subject,
            schema,
            normalize,
        } => {
            let input = read_schema(&schema)?;
            let id = client.register(&subject, &input, normalize).await?;
            println!("{id}");
        }
        SchemaCommand::Get {
            subject,
            version,
            id,
            schema_only,
        } => {
            let answer = match (id, subject) {
                (Some(id), _) => {
                    client
                        .request(method::GET, &format!("/schemas/ids/{id}"), None)
                        .await?
                }
                (None, Some(subject)) => {
                    client
                        .request(
                            method::GET,
                            &format!("/subjects/{}/versions/{}", seg(&subject), seg(&version)),
                            None,
                        )
                        .await?
                }
                (None, None) => bail!("give a subject or --id"),
            };
            if schema_only {
                println!("{}", answer["schema"].as_str().unwrap_or_default());
            } else {
                println!("{answer}");
            }
        }
        SchemaCommand::List {
            subject,
            deleted,
            prefix,
        } => {
            let answer = match subject {
                Some(subject) => {
                    client
                        .request(
                            method::GET,
                            &format!("/subjects/{}/versions?deleted={deleted}", seg(&subject)),
                            None,
                        )
                        .await?
                }
                None => {
                    let prefix = prefix.as_deref().map(seg).unwrap_or_default();
                    client
                        .request(
                            method::GET,
                            &format!("/subjects?deleted={deleted}&subjectPrefix={prefix}"),
                            None,
                        )
                        .await?
                }
            };
            print(&answer);
        }
        SchemaCommand::Delete {
            subject,
            version,
            permanent,
        } => {
            let path = match version {
                Some(v) => format!(
                    "/subjects/{}/versions/{}?permanent={permanent}",
                    seg(&subject),
                    seg(&v)
                ),
                None => format!("/subjects/{}?permanent={permanent}", seg(&subject)),
            };
            print(&client.request(method::DELETE, &path, None).await?);
        }
        SchemaCommand::Check {
            subject,
            schema,
            version,
        } => {
            let input = read_schema(&schema)?;
            let (compatible, messages) = client.check(&subject, version.as_deref(), &input).await?;
            if !compatible {
                for message in &messages {
                    eprintln!("{message}");
                }
                bail!("the schema is incompatible with subject {subject}");
            }
            println!("compatible");
        }
        SchemaCommand::Config { subject, set } => {
            let path = match &subject {
                Some(s) => format!("/config/{}", seg(s)),
                None => "/config".to_owned(),
            };
            let answer = match set {
                Some(level) => {
                    client
                        .request(
                            method::PUT,
                            &path,
                            Some(&json!({ "compatibility": level.to_ascii_uppercase() })),
                        )
                        .await?
                }
                None => {
                    let path = if subject.is_some() {
                        format!("{path}?defaultToGlobal=true")
                    } else {
                        path
                    };
                    client.request(method::GET, &path, None).await?
                }
            };
            let level = answer["compatibilityLevel"]
                .as_str()
                .or_else(|| answer["compatibility"].as_str())
                .context("no compatibility level in the answer")?;
            println!("{level}");
        }
    }
    Ok(())
}
