//! `strom pipeline validate|describe|run FILE`: check a pipeline file, show its topology,
//! run it.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};

/// `strom pipeline …`
#[derive(Debug, Args)]
pub struct PipelineArgs {
    #[command(subcommand)]
    command: PipelineCommand,
}

#[derive(Debug, Subcommand)]
enum PipelineCommand {
    /// Check a pipeline file: every mistake with file, line and column.
    Validate {
        /// The pipeline file (YAML).
        file: PathBuf,
    },
    /// Run a pipeline: create its missing topics, process until Ctrl-C or SIGTERM.
    #[cfg(feature = "tools")]
    Run(RunArgs),
    /// Print a pipeline's topology as text, or as a Mermaid graph.
    Describe {
        /// The pipeline file (YAML).
        file: PathBuf,
        /// A Mermaid flowchart instead of text.
        #[arg(long)]
        mermaid: bool,
    },
}

/// `strom pipeline run`.
#[cfg(feature = "tools")]
#[derive(Debug, Args)]
struct RunArgs {
    /// The pipeline file (YAML).
    file: PathBuf,
    /// Kafka bootstrap servers when the file has no `bootstrap_servers`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_servers: String,
    /// State directory (a subdirectory per pipeline name).
    #[arg(long, default_value = "./pipeline-state")]
    state_dir: PathBuf,
    /// Stream threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Serve the live view (`GET /`), `GET /metrics` (Prometheus), health and the
    /// WebSocket endpoints here.
    #[arg(long)]
    http_addr: Option<std::net::SocketAddr>,
}

#[cfg(feature = "tools")]
fn run_pipeline(args: RunArgs) -> anyhow::Result<()> {
    let p = load(&args.file)?;
    let options = strom_pipeline::run::RunOptions {
        bootstrap_servers: args.bootstrap_servers,
        state_dir: args.state_dir,
        threads: args.threads,
        http_addr: args.http_addr,
        plugins: Default::default(),
    };
    let name = args.file.display().to_string();
    let app = match strom_pipeline::run::start(&name, &p, &options, &|k| std::env::var(k).ok()) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("{e}");
            bail!("{name}: cannot run pipeline {}", p.name);
        }
    };
    if let Some(bound) = app.http_addr() {
        eprintln!("live view on http://{bound}/, metrics on http://{bound}/metrics, health on http://{bound}/healthz");
    }
    eprintln!("running pipeline {} (Ctrl-C stops it)", p.name);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stopped_by = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        let mut last = 0u64;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return anyhow::Ok("SIGINT"),
                _ = term.recv() => return anyhow::Ok("SIGTERM"),
                _ = tick.tick() => {
                    if !app.is_running() {
                        return anyhow::Ok("a stream thread or sink stopped");
                    }
                    let m = app.streams().metrics();
                    eprintln!("{} records ({}/s), {} skipped to the dead-letter topic, {} late",
                        m.records_processed, (m.records_processed - last) / 5, m.records_skipped, m.late_records);
                    last = m.records_processed;
                    for s in app.sinks() {
                        eprintln!("  sink {}: {}", s.name, strom_pipeline::connectors::metrics::summary(s));
                    }
                }
            }
        }
    })?;
    eprintln!("stopping ({stopped_by}): committing and leaving the group");
    app.close().map_err(anyhow::Error::msg)?;
    Ok(())
}

fn load(file: &PathBuf) -> anyhow::Result<strom_pipeline::Pipeline> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let diagnostics = match strom_pipeline::parse(&name, &text, &|k| std::env::var(k).ok()) {
        // The files it names are read where the pipeline file is.
        Ok(p) => match strom_pipeline::dashboard::locate(&name, &p) {
            Ok(_) => return Ok(p),
            Err(d) => strom_pipeline::Diagnostics(vec![d]),
        },
        Err(diagnostics) => diagnostics,
    };
    eprintln!("{diagnostics}");
    bail!("{name}: {} mistake(s)", diagnostics.0.len())
}

/// Runs a pipeline subcommand.
pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    match args.command {
        PipelineCommand::Validate { file } => {
            let p = load(&file)?;
            println!(
                "{}: pipeline {} is valid ({} inputs, {} steps, {} outputs)",
                file.display(),
                p.name,
                p.inputs.len(),
                p.steps.len(),
                p.sinks.len()
            );
        }
        #[cfg(feature = "tools")]
        PipelineCommand::Run(args) => run_pipeline(args)?,
        PipelineCommand::Describe { file, mermaid } => {
            let p = load(&file)?;
            if mermaid {
                print!("{}", strom_pipeline::describe::mermaid(&p));
            } else {
                print!("{}", strom_pipeline::describe::text(&p));
            }
        }
    }
    Ok(())
}
