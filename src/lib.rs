//! namespace-scheduler: switch non-production Kubernetes namespaces off outside business hours
//! and back on in the morning, atomically, with an audit trail in DynamoDB.
//!
//! Data flows one way: [`config`] → [`hours`] decision → [`scaling`] plan → apply → [`audit`] →
//! summary. See `SPEC.md` for the product.

pub mod audit;
pub mod calendar;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dynamo;
pub mod error;
pub mod hours;
pub mod metrics;
pub mod permissions;
pub mod report;
pub mod scaling;
pub mod selector;
pub mod telemetry;

pub use error::{Error, Exit, Result};
