//! namespace-scheduler: switch non-production Kubernetes namespaces off outside business hours
//! and back on in the morning, atomically, with an audit trail in DynamoDB.
//!
//! Data flows one way: [`config`] → decision ([`hours`], per namespace [`schedule`];
//! [`permissions`]) → [`scaling`] plan → apply → [`audit`] → [`summary`]. [`self_service`]
//! judges and answers ActivationRequests on top of `scaling` (its answers written through the
//! engine's after-apply hook). [`commands`] (the CLI) sits on top and hands the engine a
//! [`context::Context`]; nothing below it knows the CLI.
//! See `docs/reference.md`.

pub mod audit;
pub mod calendar;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod dynamo;
pub mod error;
pub mod fleet;
pub mod history;
pub mod hours;
pub mod metrics;
pub mod permissions;
pub mod report;
pub mod scaling;
pub mod schedule;
pub mod selector;
pub mod self_service;
pub mod summary;
pub mod telemetry;

pub use error::{Error, Exit, Result};
