//! Logging: one JSON object per line (CloudWatch) or plain text, on stderr, with the run id on
//! every line. Stdout is reserved for the command's summary so it can be piped.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

/// A run id that sorts by time and is unique enough across concurrent Jobs:
/// `20261123T180000Z-3f9a1c`.
pub fn new_run_id() -> String {
    format!(
        "{}-{:06x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        fastrand::u32(..0x100_0000)
    )
}

/// Installs the global subscriber. `level` is a `tracing` directive (`info`, `debug`…); noisy
/// dependencies are held at `warn` unless `RUST_LOG` says otherwise.
pub fn init(level: &str, format: LogFormat) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "warn,namespace_scheduler={level},namespace-scheduler={level},kube=warn,aws=warn,hyper=warn"
            ))
        });
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init: tests may install a subscriber more than once in one process.
    let _ = match format {
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// The span every line of a run is logged inside, so each carries `run_id` (and the command).
pub fn run_span(run_id: &str, command: &str) -> tracing::Span {
    tracing::info_span!("run", run_id = %run_id, command = %command)
}
