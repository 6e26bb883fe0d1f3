//! The `authstat` binary: parse the command line, run the command, exit with its code.

use authstat::cli::{Cli, Command, HllCommand};
use authstat::commands::{self, Failure};
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
            version();
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
        command => on_runtime(command),
    };
    if let Err(failure) = result {
        eprintln!("authstat: {failure}");
        std::process::exit(failure.exit_code());
    }
}

fn version() {
    let build = authstat::build_info::INFO;
    println!("authstat {}", build.version);
    println!("commit: {}", build.commit);
    println!("built: {}", build.date);
    println!("backends: {}", build.backends().join(", "));
}

/// Runs a command that needs the tokio runtime.
fn on_runtime(command: Command) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(e.into()))?;
    let result = rt.block_on(run(command));
    // Whatever still runs on the runtime's threads (a pipeline that did not finish within the
    // grace period) must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            config,
            take_over,
            overrides,
        } => commands::run(&config, authstat::StartOptions { take_over }, &overrides).await,
        Command::CheckConfig {
            config,
            file,
            skip_backend,
        } => match config.or(file) {
            Some(config) => commands::check_config(&config, skip_backend).await,
            None => Err(Failure::Usage(
                "check-config: give the configuration file (--config FILE)".into(),
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
            group_by,
            top,
            from,
            to,
            by,
        } => {
            if let (Some(from), Some(to)) = (from, to) {
                return commands::query_days(&config, &from, &to, by.as_deref(), format).await;
            }
            let grouping = group_by.map(|g| authstat_api::Grouping {
                kind: match g {
                    authstat::cli::GroupBy::Client => authstat_core::dims::DimKind::Client,
                    authstat::cli::GroupBy::Realm => authstat_core::dims::DimKind::Realm,
                },
                top: usize::from(top),
            });
            commands::query(&config, &month, format, by_node, grouping).await
        }
        Command::Import {
            from,
            config,
            source,
        } => commands::import(&config, from.as_deref(), source.as_deref()).await,
        Command::Version | Command::Completions { .. } | Command::Hll { .. } => {
            unreachable!("handled without a runtime")
        }
    }
}
