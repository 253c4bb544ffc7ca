//! The `ecr-gc` binary: inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) and
//! given no subcommand it serves Lambda events; otherwise it is the CLI.

use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use chrono::Utc;
use ecr_gc::aws::Connector;
use ecr_gc::lambda::{self, Config};
use ecr_gc::run::report::JsonLines;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() && args.len() <= 1 {
        return match lambda() {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("ecr-gc: {error}");
                ExitCode::FAILURE
            }
        };
    }
    ecr_gc::cli::main(args)
}

#[tokio::main]
async fn lambda() -> Result<(), lambda_runtime::Error> {
    // One JSON object per line on stdout, fields at the top level.
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // Read once per cold start; a bad configuration fails each invocation
    // with the same clear error.
    let config = Config::from_env(|name| std::env::var(name).ok());
    if let Err(error) = &config {
        tracing::error!(%error, "invalid configuration; every invocation will fail until it is fixed");
    }
    let retry = config.as_ref().map(|c| c.retry).unwrap_or_default();
    let sdk = retry.load().await;
    let connector = Connector::new(sdk);
    let log = JsonLines::new(std::io::stdout());
    let (connector, config, log) = (&connector, &config, &log);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline =
            lambda::deadline_instant(event.context.deadline, SystemTime::now(), Instant::now());
        lambda::handle_until(connector, config, &event.payload, Utc::now(), deadline, log).await
    }))
    .await
}
