//! `strom serve --pipelines DIR`: every pipeline file in a directory runs inside the
//! broker process, against the broker's first listener.

use std::path::Path;

use anyhow::{bail, Context};
use strom_pipeline::run::{RunOptions, RunningPipeline};

/// The pipelines started with the broker.
pub struct Pipelines(Vec<RunningPipeline>);

/// Starts each `*.yaml` / `*.yml` file of `dir` (in name order) with `bootstrap` as its
/// cluster unless the file names one; state goes under `state_dir/<pipeline name>`. A
/// file that does not validate or start stops the broker's start with its errors.
pub fn start_all(dir: &Path, bootstrap: &str, state_dir: &Path) -> anyhow::Result<Pipelines> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the pipelines directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut running = Pipelines(Vec::new());
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {name}"))?;
        let pipeline = match strom_pipeline::parse(&name, &text, &|k| std::env::var(k).ok()) {
            Ok(p) => p,
            Err(diagnostics) => {
                running.close();
                bail!("{diagnostics}\n{name}: {} mistake(s)", diagnostics.0.len());
            }
        };
        let options = RunOptions {
            bootstrap_servers: bootstrap.to_string(),
            state_dir: state_dir.to_path_buf(),
            threads: 1,
            http_addr: None,
            plugins: Default::default(),
        };
        match strom_pipeline::run::start(&name, &pipeline, &options, &|k| std::env::var(k).ok()) {
            Ok(p) => {
                match p.http_addr() {
                    Some(addr) => {
                        tracing::info!(pipeline = p.name(), file = name, %addr, "pipeline running (HTTP: live view at /, /metrics, /healthz, WebSocket endpoints)")
                    }
                    None => tracing::info!(pipeline = p.name(), file = name, "pipeline running"),
                }
                running.0.push(p);
            }
            Err(e) => {
                running.close();
                bail!("{name}: cannot run pipeline {}: {e}", pipeline.name);
            }
        }
    }
    Ok(running)
}

impl Pipelines {
    /// Stops each pipeline (commit, leave its group) before the broker shuts down.
    pub fn close(self) {
        for p in self.0 {
            let name = p.name().to_string();
            if let Err(error) = p.close() {
                tracing::warn!(pipeline = name, %error, "pipeline stopped with an error");
            }
        }
    }
}
