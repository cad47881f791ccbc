//! One file per subcommand. `main` validates configuration before anything else, installs
//! logging with the run id, runs the command and maps its outcome to an exit code.

mod calendar;
mod check;
mod down;
mod history;
mod local_tables;
mod populate;
mod report;
mod run;
mod up;

use clap::Parser;

use crate::cli::{Cli, Command, OutputFormat};
use crate::config::Config;
pub(crate) use crate::context::Context;
use crate::engine::Finished;
use crate::error::Exit;
use crate::scaling::stop::Stop;
use crate::telemetry;

pub fn main() -> Exit {
    // The runtime and the signal handler come before anything else, so a SIGTERM at any
    // instant of the run is handled (before it, the default action would end the process
    // like a SIGKILL). One thread: the work is I/O-bound (≈ 0.2 s CPU per 1,000 namespaces);
    // measured no slower than the multi-thread runtime at 200 and 2,000 namespaces, with a
    // smaller peak RSS.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("namespace-scheduler: cannot start the async runtime: {e}");
            return Exit::Failed;
        }
    };
    let stop = Stop::new();
    {
        let _entered = runtime.enter();
        stop.install_signal_handler();
    }
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            // Logging is not set up yet (its settings may be the bad ones): one plain line.
            eprintln!("namespace-scheduler: {e}");
            return e.exit();
        }
    };
    telemetry::init(&config.log_level, config.log_format);
    let ctx = Context {
        config,
        output: cli.output,
        dry_run: cli.dry_run,
        run_id: telemetry::new_run_id(),
        stop,
    };
    let command = command_name(&cli.command);
    let span = telemetry::run_span(&ctx.run_id, command);
    let _entered = span.enter();

    let outcome = match cli.command {
        // Pure and fast: no runtime, no network.
        Command::Check(args) => check::execute(&ctx, args),
        Command::Calendar(args) => calendar::execute(&ctx, args),
        other => runtime.block_on(async {
            let ctx = &ctx;
            match other {
                Command::Run(args) => run::execute(ctx, args).await,
                Command::Up(args) => up::execute(ctx, args).await,
                Command::Down(args) => down::execute(ctx, args).await,
                Command::Populate(args) => populate::execute(ctx, args).await,
                Command::Report(args) => report::execute(ctx, args).await,
                Command::History(args) => history::execute(ctx, args).await,
                Command::LocalTables => local_tables::execute(ctx).await,
                Command::Check(_) | Command::Calendar(_) => unreachable!("handled above"),
            }
        }),
    };
    match outcome {
        Ok(exit) => exit,
        Err(e) => {
            tracing::error!(error = %e, exit_code = e.exit() as u8, "run ended with an error");
            if matches!(command, "run" | "up" | "down" | "populate") {
                println!("{}", error_summary(&ctx, command, &e));
            } else {
                // Data commands keep stdout for their data (calendar lines, CSV): one plain line.
                eprintln!("namespace-scheduler: {e}");
            }
            e.exit()
        }
    }
}

/// A run that ends in an error still ends with its one summary (docs/reference.md §1), in the format asked.
/// (Only for the commands whose output is a summary.)
fn error_summary(ctx: &Context, command: &str, e: &crate::Error) -> String {
    let exit = e.exit() as u8;
    match ctx.output {
        OutputFormat::Json => serde_json::json!({
            "command": command,
            "run_id": ctx.run_id,
            "cluster": ctx.config.cluster_name,
            "dry_run": ctx.dry_run,
            "exit_code": exit,
            "error": e.to_string(),
        })
        .to_string(),
        _ => format!("{command} run {}: exit {exit}: {e}", ctx.run_id),
    }
}

/// Prints what a session finished with — the plan of a dry run, or the summary and (with
/// `METRICS_FORMAT=emf`) the metrics line CloudWatch turns into metrics — and returns the run's
/// exit code.
fn print_finished(ctx: &Context, finished: Finished) -> Exit {
    let exit = finished.exit();
    match finished {
        Finished::Planned { header, plans, decided } => {
            let decided = decided.iter().map(|d| &d.row).collect();
            println!("{}", crate::summary::render_plan(ctx.output, &header, &plans, decided));
        }
        Finished::Applied { summary, figures, .. } => {
            println!("{}", crate::summary::render_summary(ctx.output, &summary).trim_end());
            if let Some(line) = crate::metrics::render(ctx.config.metrics_format, &figures) {
                println!("{line}");
            }
        }
    }
    exit
}

/// A CSV field, quoted when it needs it.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Run(_) => "run",
        Command::Up(_) => "up",
        Command::Down(_) => "down",
        Command::Check(_) => "check",
        Command::Calendar(_) => "calendar",
        Command::Populate(_) => "populate",
        Command::Report(_) => "report",
        Command::History(_) => "history",
        Command::LocalTables => "local-tables",
    }
}
