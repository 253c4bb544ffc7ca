//! The function's configuration, read from its environment once per cold
//! start: the policy (`ECR_GC_POLICY` or `ECR_GC_POLICY_FILE`), the dry run,
//! retries, the deadline margin, the targets and the fan-out queue. A bad
//! configuration is an error that names the variable, never a default.

use std::time::Duration;

use thiserror::Error;

use crate::aws::targets::{Targets, TargetsError};
use crate::aws::{EnvNumberError, SdkRetry, env_number};
use crate::model::{AccountId, NameError};
use crate::policy::{Policy, PolicyError};
use crate::run::report::Detail;

/// The function's configuration, from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// `ECR_GC_DRY_RUN`: true unless set to `false`.
    pub dry_run: bool,
    /// `ECR_GC_MAX_ATTEMPTS`, `ECR_GC_INITIAL_BACKOFF_MS`.
    pub retry: SdkRetry,
    /// `ECR_GC_DEADLINE_MARGIN_MS`: no new repository or delete batch is
    /// started when less than this remains before the invocation's deadline.
    pub deadline_margin: Duration,
    /// `ECR_GC_TARGETS` (a JSON document), else `ECR_GC_REGISTRY_ID` (one
    /// registry, with the caller's own credentials), else the caller's own
    /// account and region.
    pub targets: Targets,
    /// `ECR_GC_FANOUT_QUEUE_URL`: where a run over every selected repository
    /// sends one message per repository instead of collecting them itself.
    pub fan_out_queue_url: Option<String>,
    /// `ECR_GC_REPORT_DETAIL`: `summary` (the default: counts in the
    /// response, every image in the log lines) or `images`.
    pub detail: Detail,
}

/// The default safety margin before the Lambda deadline.
pub const DEFAULT_DEADLINE_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Error)]
pub enum ConfigError {
    #[error(
        "no policy configured: set ECR_GC_POLICY to the policy document, or ECR_GC_POLICY_FILE to its path"
    )]
    NoPolicy,
    #[error("both ECR_GC_POLICY and ECR_GC_POLICY_FILE are set; set exactly one")]
    TwoPolicies,
    #[error("ECR_GC_POLICY_FILE={path}: cannot read it: {message}")]
    PolicyFile { path: String, message: String },
    #[error("{source_name}: invalid policy: {error}")]
    Policy {
        source_name: String,
        error: PolicyError,
    },
    #[error("ECR_GC_DRY_RUN={value}: expected `true` or `false`")]
    DryRun { value: String },
    #[error("ECR_GC_ARCHIVE={value}: expected `true` or `false`")]
    Archive { value: String },
    #[error(
        "the policy archives images (a rule with action `transition`, in `rules` or an override), but ECR_GC_ARCHIVE=false says the function may not call ecr:UpdateImageStorageClass; deploy with the template's EnableArchiving=true (and the target roles' too), or drop the transition rules"
    )]
    ArchiveNotGranted,
    #[error(transparent)]
    Number(#[from] EnvNumberError),
    #[error(
        "both ECR_GC_TARGETS and ECR_GC_REGISTRY_ID are set; list the registry's account in ECR_GC_TARGETS instead"
    )]
    TwoTargetSettings,
    #[error("ECR_GC_TARGETS: {0}")]
    Targets(TargetsError),
    #[error("ECR_GC_REGISTRY_ID: {0}")]
    RegistryId(NameError),
    #[error(
        "ECR_GC_REPORT_DETAIL={value}: expected `summary` (counts only; every image is in the log lines) or `images`"
    )]
    Detail { value: String },
    #[error(
        "ECR_GC_FANOUT_QUEUE_URL={url}: expected a queue URL such as https://sqs.eu-west-1.amazonaws.com/111122223333/ecr-gc"
    )]
    QueueUrl { url: String },
}

impl Config {
    /// Reads the configuration through `var`, which looks up an
    /// environment variable (injected, so tests need not touch the process
    /// environment).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let dry_run = match var("ECR_GC_DRY_RUN") {
            None => true,
            Some(v) if v.trim().is_empty() || v.trim().eq_ignore_ascii_case("true") => true,
            Some(v) if v.trim().eq_ignore_ascii_case("false") => false,
            Some(value) => return Err(ConfigError::DryRun { value }),
        };
        let inline = var("ECR_GC_POLICY").filter(|v| !v.trim().is_empty());
        let file = var("ECR_GC_POLICY_FILE").filter(|v| !v.trim().is_empty());
        let (source_name, text) = match (inline, file) {
            (Some(_), Some(_)) => return Err(ConfigError::TwoPolicies),
            (None, None) => return Err(ConfigError::NoPolicy),
            (Some(text), None) => ("ECR_GC_POLICY".to_owned(), text),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::PolicyFile {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                (format!("ECR_GC_POLICY_FILE={path}"), text)
            }
        };
        let policy =
            Policy::parse(&text).map_err(|error| ConfigError::Policy { source_name, error })?;
        // The template says whether it granted archiving; a policy that
        // archives without the grant would fail image by image, so it is
        // refused before any call.
        match var("ECR_GC_ARCHIVE").map(|v| v.trim().to_ascii_lowercase()) {
            None => {}
            Some(v) if v.is_empty() || v == "true" => {}
            Some(v) if v == "false" && policy.transitions() => {
                return Err(ConfigError::ArchiveNotGranted);
            }
            Some(v) if v == "false" => {}
            Some(value) => return Err(ConfigError::Archive { value }),
        }
        let retry = SdkRetry::from_env(&var)?;
        let deadline_margin = match var("ECR_GC_DEADLINE_MARGIN_MS") {
            None => DEFAULT_DEADLINE_MARGIN,
            Some(value) => Duration::from_millis(env_number(
                "ECR_GC_DEADLINE_MARGIN_MS",
                &value,
                0..=900_000,
                "milliseconds",
            )?),
        };
        let registry_id = var("ECR_GC_REGISTRY_ID").filter(|v| !v.trim().is_empty());
        let targets = var("ECR_GC_TARGETS").filter(|v| !v.trim().is_empty());
        let targets = match (targets, registry_id) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::TwoTargetSettings);
            }
            (Some(text), None) => Targets::parse(&text).map_err(ConfigError::Targets)?,
            (None, Some(id)) => {
                Targets::registry(AccountId::parse(id).map_err(ConfigError::RegistryId)?)
            }
            (None, None) => Targets::own(),
        };
        let fan_out_queue_url = var("ECR_GC_FANOUT_QUEUE_URL").filter(|v| !v.trim().is_empty());
        if let Some(url) = &fan_out_queue_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(ConfigError::QueueUrl { url: url.clone() });
        }
        let detail = match var("ECR_GC_REPORT_DETAIL").filter(|v| !v.trim().is_empty()) {
            None => Detail::Summary,
            Some(value) => Detail::parse(&value).ok_or(ConfigError::Detail { value })?,
        };
        Ok(Config {
            policy,
            dry_run,
            retry,
            deadline_margin,
            targets,
            fan_out_queue_url,
            detail,
        })
    }
}

#[cfg(test)]
impl Config {
    /// The configuration these variables give.
    pub(crate) fn from_pairs(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(|name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::targets::Target;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(vars)
    }

    #[test]
    fn configuration() {
        let policy = include_str!("../../examples/policy.json");
        assert!(config(&[("ECR_GC_POLICY", policy)]).unwrap().dry_run);
        assert!(
            config(&[("ECR_GC_POLICY", policy), ("ECR_GC_DRY_RUN", "TRUE")])
                .unwrap()
                .dry_run
        );
        assert!(
            !config(&[("ECR_GC_POLICY", policy), ("ECR_GC_DRY_RUN", "false")])
                .unwrap()
                .dry_run
        );
        assert!(config(&[("ECR_GC_POLICY_FILE", "examples/policy.json")]).is_ok());
        // The response is a summary unless images are asked for.
        let detail = |value: &str| {
            config(&[("ECR_GC_POLICY", policy), ("ECR_GC_REPORT_DETAIL", value)]).map(|c| c.detail)
        };
        assert_eq!(detail("").unwrap(), Detail::Summary);
        assert_eq!(detail("Images").unwrap(), Detail::Images);
        assert_eq!(detail("summary").unwrap(), Detail::Summary);
        let error = |vars: &[(&str, &str)]| config(vars).unwrap_err().to_string();
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_REPORT_DETAIL", "all")])
                .contains("ECR_GC_REPORT_DETAIL=all: expected `summary`")
        );
        assert!(error(&[]).contains("ECR_GC_POLICY"));
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_DRY_RUN", "no")])
                .contains("ECR_GC_DRY_RUN=no")
        );
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_POLICY_FILE", "x")])
                .contains("exactly one")
        );
        assert!(
            error(&[("ECR_GC_POLICY_FILE", "/nonexistent/p.json")]).contains("/nonexistent/p.json")
        );
        assert!(
            error(&[("ECR_GC_POLICY", r#"{"rules":[]}"#)])
                .contains("ECR_GC_POLICY: invalid policy")
        );
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_DEADLINE_MARGIN_MS", "soon")
            ])
            .contains("ECR_GC_DEADLINE_MARGIN_MS")
        );
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_MAX_ATTEMPTS", "99")])
                .contains("ECR_GC_MAX_ATTEMPTS")
        );
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_REGISTRY_ID", "12345")])
                .contains("ECR_GC_REGISTRY_ID: registry id `12345` is not an AWS account id")
        );
        let config = config(&[
            ("ECR_GC_POLICY", policy),
            ("ECR_GC_REGISTRY_ID", "210987654321"),
        ]);
        assert_eq!(
            config.unwrap().targets.expand(),
            vec![Target {
                account_id: Some("210987654321".into()),
                region: None
            }]
        );
        let targets = r#"{"regions": ["eu-west-1"]}"#;
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_TARGETS", targets),
                ("ECR_GC_REGISTRY_ID", "210987654321")
            ])
            .contains("both ECR_GC_TARGETS and ECR_GC_REGISTRY_ID")
        );
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_TARGETS", r#"{"regions": ["x"]}"#)
            ])
            .contains("ECR_GC_TARGETS: regions[0]")
        );
        assert!(
            error(&[
                ("ECR_GC_POLICY", policy),
                ("ECR_GC_FANOUT_QUEUE_URL", "my-queue")
            ])
            .contains("ECR_GC_FANOUT_QUEUE_URL=my-queue")
        );
        // A policy that archives needs the grant the template gives with
        // EnableArchiving; ECR_GC_ARCHIVE=false says it was not given.
        let archiving = include_str!("../../examples/archive-policy.json");
        assert!(config_ok(&[("ECR_GC_POLICY", archiving)]));
        assert!(config_ok(&[
            ("ECR_GC_POLICY", archiving),
            ("ECR_GC_ARCHIVE", "true")
        ]));
        assert!(config_ok(&[
            ("ECR_GC_POLICY", policy),
            ("ECR_GC_ARCHIVE", "false")
        ]));
        assert!(
            error(&[("ECR_GC_POLICY", archiving), ("ECR_GC_ARCHIVE", "false")])
                .contains("EnableArchiving=true")
        );
        assert!(
            error(&[("ECR_GC_POLICY", policy), ("ECR_GC_ARCHIVE", "yes")])
                .contains("ECR_GC_ARCHIVE=yes")
        );
        // An override that archives needs it as much.
        let overridden = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}],
            "settings":{"overrides":[{"repositories":["ml/*"],"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"transition","targetStorageClass":"archive"}}]}]}}"#;
        assert!(
            error(&[("ECR_GC_POLICY", overridden), ("ECR_GC_ARCHIVE", "false")])
                .contains("EnableArchiving=true")
        );
    }

    fn config_ok(vars: &[(&str, &str)]) -> bool {
        config(vars).is_ok()
    }
}
