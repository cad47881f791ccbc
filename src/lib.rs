//! namespace-scheduler: switch non-production Kubernetes namespaces off outside business hours
//! and back on in the morning, atomically, with an audit trail in DynamoDB.
//!
//! Data flows one way: [`config`] → decision ([`hours`], per namespace [`schedule`];
//! [`permissions`]) → [`scaling`] plan → apply → [`audit`] → [`summary`], with [`resources`]
//! (what pods request) a leaf they share. [`engine`] runs that sequence for `run`, `up` and
//! `down` and returns the summary as a value; [`self_service`] judges and answers
//! ActivationRequests on top of it (its answers written through the engine's after-apply hook).
//! [`commands`] (the CLI) sits on top: it builds the run's [`context::Context`] and
//! [`context::Clients`] once, hands them down, and is the only layer that prints.
//! `scripts/check-layers.py` (run by `scripts/test.sh`) fails on a cycle among these modules
//! and on printing outside `commands`.
//! See `docs/reference.md`.

pub mod audit;
pub(crate) mod backoff;
pub mod calendar;
pub(crate) mod cli;
pub mod commands;
pub mod config;
pub(crate) mod context;
pub mod dynamo;
pub(crate) mod engine;
pub(crate) mod error;
pub mod fleet;
pub(crate) mod history;
pub mod hours;
pub mod kinds;
pub(crate) mod metrics;
pub mod permissions;
pub mod report;
pub(crate) mod resources;
pub mod scaling;
pub mod schedule;
pub(crate) mod selector;
pub mod self_service;
pub(crate) mod summary;
pub(crate) mod telemetry;
pub mod yaml;

pub use error::{Error, Exit, Result};
