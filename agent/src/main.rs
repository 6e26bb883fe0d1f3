//! The `authstat` binary: parse the command line, run the command, exit with its code.

use authstat::cli::{Cli, Command, HllCommand};
use authstat::commands;
use clap::Parser;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                // A bad command line: EX_USAGE.
                _ => 64,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let result = match cli.command {
        Command::Version => {
            let build = authstat::build_info::INFO;
            println!("authstat {}", build.version);
            println!("commit: {}", build.commit);
            println!("built: {}", build.date);
            println!("backends: {}", build.backends().join(", "));
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "authstat",
                &mut std::io::stdout(),
            );
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
                    let result = rt.block_on(async {
                        match command {
                            Command::Run {
                                config,
                                take_over,
                                overrides,
                            } => {
                                commands::run(
                                    &config,
                                    authstat::StartOptions { take_over },
                                    &overrides,
                                )
                                .await
                            }
                            Command::CheckConfig {
                                config,
                                file,
                                skip_backend,
                            } => match config.or(file) {
                                Some(config) => commands::check_config(&config, skip_backend).await,
                                None => Err(commands::Failure::Usage(
                                    "check-config: give the configuration file (--config FILE)"
                                        .into(),
                                )),
                            },
                            Command::Backfill {
                                config,
                                format,
                                threads,
                                paths,
                            } => commands::backfill(&config, &format, threads, &paths).await,
                            Command::Query {
                                config,
                                month,
                                format,
                                by_node,
                            } => commands::query(&config, &month, format, by_node).await,
                            Command::Import {
                                what: authstat::cli::ImportCommand::Janssen { config, source },
                            } => commands::import_janssen(&config, source.as_deref()).await,
                            Command::Version
                            | Command::Completions { .. }
                            | Command::Hll { .. } => unreachable!("handled above"),
                        }
                    });
                    // Whatever still runs on the runtime's threads (a pipeline that did not
                    // finish within the grace period) must not keep the process alive.
                    rt.shutdown_timeout(std::time::Duration::from_millis(500));
                    result
                },
            ),
    };
    if let Err(failure) = result {
        eprintln!("authstat: {failure}");
        std::process::exit(failure.exit_code());
    }
}
