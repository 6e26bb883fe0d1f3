//! The `authstat` binary: parse the command line, run the command, exit with its code.

use authstat::cli::{Cli, Command, HllCommand};
use authstat::commands;
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Version => {
            println!("authstat {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Hll {
            command: HllCommand::Inspect { value },
        } => commands::hll_inspect(&value),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_or_else(
                |e| Err(commands::Failure::Other(e.into())),
                |rt| {
                    rt.block_on(async {
                        match command {
                            Command::Run { config } => commands::run(&config).await,
                            Command::CheckConfig { config } => {
                                commands::check_config(&config).await
                            }
                            Command::Backfill {
                                config,
                                format,
                                paths,
                            } => commands::backfill(&config, format, &paths).await,
                            Command::Query {
                                config,
                                month,
                                format,
                            } => commands::query(&config, &month, format).await,
                            Command::Version | Command::Hll { .. } => unreachable!("handled above"),
                        }
                    })
                },
            ),
    };
    if let Err(failure) = result {
        eprintln!("authstat: {failure}");
        std::process::exit(failure.exit_code());
    }
}
