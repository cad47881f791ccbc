use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = namespace_scheduler::cli::Cli::parse();
    namespace_scheduler::commands::main(cli).into()
}
