//! `pictor-host`: the Pictor worker node's command line.

mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    if let Err(e) = pictor_cli::logging::init(cli.log_format) {
        eprintln!("error: cannot start logging: {e:#}");
        return ExitCode::from(2);
    }
    match cli.command.execute() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(commands::EXIT_USAGE)
        }
    }
}
