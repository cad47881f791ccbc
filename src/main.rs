use std::process::ExitCode;

fn main() -> ExitCode {
    namespace_scheduler::commands::main().into()
}
