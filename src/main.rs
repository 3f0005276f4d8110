use std::process::ExitCode;

fn main() -> ExitCode {
    facefind::cli::main()
}
