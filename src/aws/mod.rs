//! What every AWS adapter shares: the clients, built once from one SDK
//! configuration; error codes as AWS spells them; and list pagination that
//! refuses to loop on a repeated token.
//!
//! The adapters themselves are [`ecr`], [`sqs`] and `inventory/`; nothing
//! else talks to AWS. [`Connector`] (STS, here) reaches other accounts and
//! regions: it assumes each target account's role once per run.

pub mod ecr;
pub mod sqs;
pub mod targets;

use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

/// The clients one run needs, for one account and region.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ecr: aws_sdk_ecr::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub batch: aws_sdk_batch::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub apprunner: aws_sdk_apprunner::Client,
    pub sagemaker: aws_sdk_sagemaker::Client,
    pub eks: aws_sdk_eks::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub s3: aws_sdk_s3::Client,
    pub sts: aws_sdk_sts::Client,
    pub sqs: aws_sdk_sqs::Client,
    /// The region the clients call, when the configuration names one.
    pub region: Option<String>,
    /// The clients' credentials, for what signs requests itself (the EKS
    /// source's tokens).
    pub credentials: Option<aws_sdk_sts::config::SharedCredentialsProvider>,
}

impl Clients {
    /// The account these clients' credentials belong to (STS
    /// GetCallerIdentity).
    pub async fn caller_account(&self) -> Result<String, CallError> {
        const OP: &str = "GetCallerIdentity";
        let out = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| CallError::from_sdk(OP, &e))?;
        out.account()
            .map(str::to_owned)
            .ok_or_else(|| CallError::new(OP, "InvalidResponse", "no account in the response"))
    }

    pub fn new(config: &aws_config::SdkConfig) -> Clients {
        Clients {
            ecr: aws_sdk_ecr::Client::new(config),
            ecs: aws_sdk_ecs::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            events: aws_sdk_eventbridge::Client::new(config),
            scheduler: aws_sdk_scheduler::Client::new(config),
            batch: aws_sdk_batch::Client::new(config),
            codebuild: aws_sdk_codebuild::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            apprunner: aws_sdk_apprunner::Client::new(config),
            sagemaker: aws_sdk_sagemaker::Client::new(config),
            eks: aws_sdk_eks::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            // Path-style addressing works with every endpoint, including
            // a local emulator's.
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(config)
                    .force_path_style(true)
                    .build(),
            ),
            sts: aws_sdk_sts::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            region: config.region().map(|r| r.as_ref().to_owned()),
            credentials: config.credentials_provider(),
        }
    }
}

/// A failed AWS call, the one error shape every adapter shares: the
/// operation, the error code as AWS spells it (or ecr-gc's own code for an
/// answer it cannot use, such as `MalformedManifest`), and the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {code}: {message}")]
pub struct CallError {
    pub operation: &'static str,
    pub code: String,
    pub message: String,
}

impl CallError {
    pub fn new(
        operation: &'static str,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> CallError {
        CallError {
            operation,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The code and message of an SDK error, after the SDK's own retries.
    pub fn from_sdk<E, R>(operation: &'static str, error: &SdkError<E, R>) -> CallError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        let (code, message) = error_parts(error);
        CallError {
            operation,
            code,
            message,
        }
    }

    /// A list call answered with the token it was given.
    pub fn repeated_token(operation: &'static str) -> CallError {
        CallError::new(
            operation,
            "RepeatedPaginationToken",
            "the service returned the pagination token it was given",
        )
    }
}

/// Credentials for one target account: the function's own, or an assumed
/// role's.
#[derive(Clone, Debug)]
pub enum Credentials {
    Own,
    Assumed(aws_sdk_ecr::config::SharedCredentialsProvider),
}

/// Builds [`Clients`] for any account and region from one base
/// configuration (retry, timeouts, endpoint, the function's credentials).
#[derive(Clone, Debug)]
pub struct Connector {
    base: aws_config::SdkConfig,
    home: Clients,
}

impl Connector {
    pub fn new(base: aws_config::SdkConfig) -> Connector {
        Connector {
            home: Clients::new(&base),
            base,
        }
    }

    /// The clients for the function's own account and region.
    pub fn home(&self) -> &Clients {
        &self.home
    }

    /// The account the function's own credentials belong to.
    pub async fn own_account(&self) -> Result<String, CallError> {
        self.home.caller_account().await
    }

    /// Assumes `role_arn` once, through the function's own region's STS
    /// endpoint. The session lasts an hour, longer than any Lambda
    /// invocation; a CLI run is expected to finish within it.
    pub async fn assume(
        &self,
        role_arn: &str,
        session_name: &str,
        external_id: Option<&str>,
    ) -> Result<Credentials, CallError> {
        const OP: &str = "AssumeRole";
        let out = self
            .home
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .set_external_id(external_id.map(str::to_owned))
            .duration_seconds(3600)
            .send()
            .await
            .map_err(|e| CallError::from_sdk(OP, &e))?;
        let c = out.credentials().ok_or_else(|| {
            CallError::new(OP, "InvalidResponse", "no credentials in the response")
        })?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        let credentials = aws_sdk_ecr::config::Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_owned()),
            expiry,
            "ecr-gc-assume-role",
        );
        Ok(Credentials::Assumed(
            aws_sdk_ecr::config::SharedCredentialsProvider::new(credentials),
        ))
    }

    /// The clients for `region` (`None`: the function's own) with these
    /// credentials.
    pub fn clients(&self, region: Option<&str>, credentials: &Credentials) -> Clients {
        if region.is_none() && matches!(credentials, Credentials::Own) {
            return self.home.clone();
        }
        let mut builder = self.base.to_builder();
        if let Some(region) = region {
            builder.set_region(Some(aws_sdk_ecr::config::Region::new(region.to_owned())));
        }
        if let Credentials::Assumed(provider) = credentials {
            builder.set_credentials_provider(Some(provider.clone()));
        }
        Clients::new(&builder.build())
    }
}

/// The SDK's retry behaviour: adaptive mode (client-side rate limiting that
/// backs off when AWS throttles; ECR's lanes use standard mode under their
/// own pace, `ecr/lanes.rs`), with configurable attempts and backoff,
/// and a timeout per attempt so a stalled response is retried, not waited on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdkRetry {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub initial_backoff: std::time::Duration,
    pub attempt_timeout: std::time::Duration,
}

impl Default for SdkRetry {
    fn default() -> Self {
        SdkRetry {
            max_attempts: 5,
            initial_backoff: std::time::Duration::from_millis(200),
            attempt_timeout: std::time::Duration::from_secs(20),
        }
    }
}

impl SdkRetry {
    /// Reads `ECR_GC_MAX_ATTEMPTS` (1 to 20), `ECR_GC_INITIAL_BACKOFF_MS`
    /// (1 to 60000) and `ECR_GC_ATTEMPT_TIMEOUT_MS` (100 to 300000) through
    /// `var`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<SdkRetry, EnvNumberError> {
        let mut retry = SdkRetry::default();
        if let Some(value) = var("ECR_GC_MAX_ATTEMPTS") {
            retry.max_attempts =
                env_number("ECR_GC_MAX_ATTEMPTS", &value, 1..=20, "a whole number")?;
        }
        if let Some(value) = var("ECR_GC_INITIAL_BACKOFF_MS") {
            let millis = env_number(
                "ECR_GC_INITIAL_BACKOFF_MS",
                &value,
                1..=60_000,
                "milliseconds",
            )?;
            retry.initial_backoff = std::time::Duration::from_millis(millis);
        }
        if let Some(value) = var("ECR_GC_ATTEMPT_TIMEOUT_MS") {
            let millis = env_number(
                "ECR_GC_ATTEMPT_TIMEOUT_MS",
                &value,
                100..=300_000,
                "milliseconds",
            )?;
            retry.attempt_timeout = std::time::Duration::from_millis(millis);
        }
        Ok(retry)
    }

    /// Sets this retry and timeout behaviour on a configuration loader.
    pub fn apply(self, loader: aws_config::ConfigLoader) -> aws_config::ConfigLoader {
        let retry = aws_config::retry::RetryConfig::adaptive()
            .with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff);
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .operation_attempt_timeout(self.attempt_timeout)
            .build();
        loader.retry_config(retry).timeout_config(timeouts)
    }

    /// Loads the standard AWS configuration (credentials, region, endpoint,
    /// `AWS_ENDPOINT_URL` included) with this retry behaviour.
    pub async fn load(self) -> aws_config::SdkConfig {
        self.apply(aws_config::defaults(aws_config::BehaviorVersion::latest()))
            .load()
            .await
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

/// The error a list call fails with: a call that failed (after the SDK's
/// own retries), or a service that answered with the token it was given.
pub trait PageError: Sized {
    fn call_failed<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug;

    fn repeated_token(operation: &'static str) -> Self;
}

impl PageError for CallError {
    fn call_failed<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        CallError::from_sdk(operation, &error)
    }

    fn repeated_token(operation: &'static str) -> Self {
        CallError::repeated_token(operation)
    }
}

/// Every page of a list call: `send` makes the call for a token (`None`
/// first), `read` takes a page's items and its next token. Stops at the
/// last page, and refuses to loop when a service hands back the token it
/// was given.
pub async fn paginate<T, O, E, R, Er, F, Fut, G>(
    operation: &'static str,
    mut send: F,
    mut read: G,
) -> Result<Vec<T>, Er>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<O, SdkError<E, R>>>,
    G: FnMut(O) -> Result<(Vec<T>, Option<String>), Er>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
    Er: PageError,
{
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = send(token.clone())
            .await
            .map_err(|e| Er::call_failed(operation, e))?;
        let (page, next) = read(page)?;
        items.extend(page);
        match next {
            None => return Ok(items),
            Some(next) if Some(&next) == token.as_ref() => {
                return Err(Er::repeated_token(operation));
            }
            Some(next) => token = Some(next),
        }
    }
}

/// An environment variable's whole number within `range`, or an error
/// that names the variable, its value and what it expects: `what` is the
/// unit, such as `milliseconds`.
pub fn env_number<T>(
    name: &str,
    value: &str,
    range: std::ops::RangeInclusive<T>,
    what: &str,
) -> Result<T, EnvNumberError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    value
        .trim()
        .parse::<T>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| EnvNumberError {
            name: name.to_owned(),
            value: value.to_owned(),
            expected: format!("{what} from {} to {}", range.start(), range.end()),
        })
}

/// An environment variable that is not a number in its range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value}: expected {expected}")]
pub struct EnvNumberError {
    pub name: String,
    pub value: String,
    /// What it should be, such as `milliseconds from 1 to 60000`.
    pub expected: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_settings() {
        let retry = |vars: &[(&str, &str)]| {
            SdkRetry::from_env(|n| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(retry(&[]), Ok(SdkRetry::default()));
        assert_eq!(
            retry(&[
                ("ECR_GC_MAX_ATTEMPTS", "9"),
                ("ECR_GC_INITIAL_BACKOFF_MS", "50")
            ]),
            Ok(SdkRetry {
                max_attempts: 9,
                initial_backoff: std::time::Duration::from_millis(50),
                ..SdkRetry::default()
            })
        );
        for bad in [
            ("ECR_GC_MAX_ATTEMPTS", "0"),
            ("ECR_GC_MAX_ATTEMPTS", "many"),
            ("ECR_GC_INITIAL_BACKOFF_MS", "-1"),
            ("ECR_GC_ATTEMPT_TIMEOUT_MS", "5"),
        ] {
            assert!(retry(&[bad]).unwrap_err().to_string().contains(bad.0));
        }
    }
}
