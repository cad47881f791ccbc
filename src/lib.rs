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
pub mod backoff;
pub mod calendar;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod dynamo;
pub mod engine;
pub mod error;
pub mod fleet;
pub mod history;
pub mod hours;
pub mod metrics;
pub mod permissions;
pub mod report;
pub mod resources;
pub mod scaling;
pub mod schedule;
pub mod selector;
pub mod self_service;
pub mod summary;
pub mod telemetry;

pub use error::{Error, Exit, Result};
