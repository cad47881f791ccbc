//! What every command hands the engine: validated configuration, the output format, dry-run,
//! the run id and the run's stop flag. Defined below the commands so the engine never reaches
//! up into the CLI.

use std::sync::Arc;

use crate::config::Config;
use crate::error::Result;
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

/// The clients of a mutating run, built once by its command and handed down: nothing below the
/// commands builds a client of its own.
#[derive(Clone)]
pub struct Clients {
    pub kube: kube::Client,
    pub dynamo: aws_sdk_dynamodb::Client,
}

impl Clients {
    /// The Kubernetes client (`kube::Config::infer()`, with the configured request timeout) and
    /// the DynamoDB client (the configured region or `DYNAMODB_ENDPOINT_URL`). Neither connects
    /// here: a run that changes nothing never calls DynamoDB.
    pub async fn connect(config: &Config) -> Result<Clients> {
        Ok(Clients {
            kube: crate::scaling::client(config.tuning.request_timeout).await?,
            dynamo: crate::dynamo::client(config).await,
        })
    }
}
