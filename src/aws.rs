//! What every AWS adapter shares: the clients, built once from one SDK
//! configuration; error codes as AWS spells them; and list pagination that
//! refuses to loop on a repeated token.
//!
//! The adapters themselves are `ecr.rs` and `inventory/`; nothing else
//! talks to AWS.

use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The clients one run needs, for one account and region.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    /// The region the clients call, when the configuration names one.
    pub region: Option<String>,
}

impl Clients {
    pub fn new(config: &aws_config::SdkConfig) -> Clients {
        Clients {
            ecr: aws_sdk_ecr::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            // Path-style addressing works with every endpoint, including
            // a local emulator's.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(true)
                    .build(),
            ),
            sts: aws_sdk_sts::Client::new(config),
            region: config.region().map(|r| r.as_ref().to_owned()),
        }
    }
}

/// The error code (as AWS spells it, where AWS returned one) and message of
/// a failed call.
pub fn error_parts<E, R>(error: &SdkError<E, R>) -> (String, String)
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = match error {
        SdkError::ServiceError(e) => e.err().code().unwrap_or("Unknown").to_owned(),
        SdkError::TimeoutError(_) => "TimeoutError".to_owned(),
        SdkError::DispatchFailure(_) => "DispatchFailure".to_owned(),
        SdkError::ResponseError(_) => "ResponseError".to_owned(),
        SdkError::ConstructionFailure(_) => "ConstructionFailure".to_owned(),
        _ => "Unknown".to_owned(),
    };
    let message = match error {
        SdkError::ServiceError(e) => e
            .err()
            .message()
            .map(str::to_owned)
            .unwrap_or_else(|| code.clone()),
        other => DisplayErrorContext(other).to_string(),
    };
    (code, message)
}

/// Follows a list operation's pages. `fetch` gets the token for the page
/// (`None` for the first) and returns the page's items and next token. A
/// page that hands back the token it was given ends in `repeated`'s error.
pub async fn paginate<T, E, F, Fut>(
    operation: &'static str,
    mut fetch: F,
    repeated: fn(&'static str) -> E,
) -> Result<Vec<T>, E>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), E>>,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let (page, next) = fetch(token.clone()).await?;
        items.extend(page);
        match next {
            None => return Ok(items),
            Some(next) if Some(&next) == token.as_ref() => return Err(repeated(operation)),
            Some(next) => token = Some(next),
        }
    }
}
