//! What every command hands the engine: validated configuration, the output format, dry-run,
//! the run id and the run's stop flag. Defined below the commands so the engine never reaches
//! up into the CLI.

use std::sync::Arc;

use crate::config::Config;
use crate::scaling::stop::Stop;

/// How results are printed (`--output`). Csv is only for `report` and `history`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
    /// Only for `report` and `history`.
    Csv,
}

#[derive(Debug, Clone)]
pub struct Context {
    pub config: Config,
    pub output: OutputFormat,
    pub dry_run: bool,
    pub run_id: String,
    /// Set on SIGTERM/SIGINT or when the Lease is lost: no new namespace starts.
    pub stop: Arc<Stop>,
}
