//! The `ecr-gc` binary: inside Lambda (`AWS_LAMBDA_RUNTIME_API` set) and
//! given no subcommand it serves Lambda events; otherwise it is the CLI.

use std::process::ExitCode;

use ecr_gc::lambda::Function;
use ecr_gc::run::lines::JsonLines;
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
    let function = Function::cold_start(JsonLines::new(std::io::stdout())).await;
    let function = &function;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        function.invoke(event)
    }))
    .await
}
