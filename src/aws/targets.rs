//! Where a run collects: the target regions, and the target accounts, each
//! reached through a role to assume. No I/O: this module parses and checks
//! the `ECR_GC_TARGETS` document (or the CLI's `--targets` file) and
//! expands it into one [`Target`] per account and region.
//!
//! ```json
//! {
//!   "regions": ["eu-west-1", "us-east-1"],
//!   "accounts": [
//!     {"accountId": "111122223333"},
//!     {"accountId": "444455556666",
//!      "roleArn": "arn:aws:iam::444455556666:role/ecr-gc",
//!      "externalId": "ecr-gc-prod"}
//!   ],
//!   "sessionName": "ecr-gc"
//! }
//! ```
//!
//! * `regions` defaults to the function's own region.
//! * `accounts` defaults to the function's own account. An account without
//!   `roleArn` is collected with the function's own credentials: the
//!   function's own account, or another whose registry policy lets the
//!   function in (as `ECR_GC_REGISTRY_ID` does). Its in-use inventory is then
//!   read from the function's own account's workloads, which is all those
//!   credentials can see; the run logs a warning saying so.
//! * A role must belong to the account it is listed under, so a typo cannot
//!   point one account's policy at another's registry.
//! * `sessionName` (default `ecr-gc`) names the assumed-role sessions in
//!   CloudTrail.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{AccountId, Region};

/// Where to collect, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Targets {
    /// Empty: the function's own region.
    pub regions: Vec<Region>,
    /// Empty: the function's own account.
    pub accounts: Vec<Account>,
    pub session_name: String,
}

/// One target account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub account_id: AccountId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// One registry to collect: an account in a region. `None` means the
/// function's own account, or its own region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<Region>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            self.account_id.as_deref().unwrap_or("own account"),
            self.region.as_deref().unwrap_or("own region")
        )
    }
}

/// The session name used when none is configured.
pub const DEFAULT_SESSION_NAME: &str = "ecr-gc";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {problem}")]
pub struct TargetsError {
    /// Where in the document, such as `accounts[1].roleArn`.
    pub field: String,
    pub problem: String,
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> TargetsError {
    TargetsError {
        field: field.into(),
        problem: problem.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Raw {
    #[serde(default)]
    regions: Vec<String>,
    #[serde(default)]
    accounts: Vec<RawAccount>,
    session_name: Option<String>,
}

/// An account as written, checked by [`Targets::parse`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawAccount {
    account_id: String,
    #[serde(default)]
    role_arn: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
}

impl Targets {
    /// The function's own account and region only.
    pub fn own() -> Targets {
        Targets {
            session_name: DEFAULT_SESSION_NAME.to_owned(),
            ..Targets::default()
        }
    }

    /// Only `account` (ECR_GC_REGISTRY_ID), with the function's own
    /// credentials, in its own region.
    pub fn registry(account: AccountId) -> Targets {
        Targets {
            accounts: vec![Account {
                account_id: account,
                role_arn: None,
                external_id: None,
            }],
            ..Targets::own()
        }
    }

    /// Parses and checks a targets document.
    pub fn parse(text: &str) -> Result<Targets, TargetsError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: Raw = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            bad(
                if path == "." { "document".into() } else { path },
                e.into_inner().to_string(),
            )
        })?;
        let mut regions = Vec::with_capacity(raw.regions.len());
        for (i, region) in raw.regions.into_iter().enumerate() {
            let region =
                Region::parse(region).map_err(|p| bad(format!("regions[{i}]"), p.to_string()))?;
            if regions.contains(&region) {
                return Err(bad(
                    format!("regions[{i}]"),
                    format!("{region} is listed twice"),
                ));
            }
            regions.push(region);
        }
        let mut accounts: Vec<Account> = Vec::with_capacity(raw.accounts.len());
        for (i, account) in raw.accounts.into_iter().enumerate() {
            let account_id = AccountId::parse(account.account_id)
                .map_err(|p| bad(format!("accounts[{i}].accountId"), p.to_string()))?;
            if accounts.iter().any(|a| a.account_id == account_id) {
                return Err(bad(
                    format!("accounts[{i}].accountId"),
                    format!("{account_id} is listed twice"),
                ));
            }
            if let Some(arn) = &account.role_arn {
                check_role_arn(arn, &account_id)
                    .map_err(|p| bad(format!("accounts[{i}].roleArn"), p))?;
            }
            match (&account.external_id, &account.role_arn) {
                (Some(_), None) => {
                    return Err(bad(
                        format!("accounts[{i}].externalId"),
                        "an external id is only used with roleArn",
                    ));
                }
                (Some(id), Some(_)) => check_sts_text(id, 2, 1224)
                    .map_err(|p| bad(format!("accounts[{i}].externalId"), p))?,
                _ => {}
            }
            accounts.push(Account {
                account_id,
                role_arn: account.role_arn,
                external_id: account.external_id,
            });
        }
        let session_name = raw
            .session_name
            .unwrap_or_else(|| DEFAULT_SESSION_NAME.to_owned());
        check_sts_text(&session_name, 2, 64).map_err(|p| bad("sessionName", p))?;
        if session_name.contains(['/', ':']) {
            return Err(bad("sessionName", "`/` and `:` are not allowed"));
        }
        Ok(Targets {
            regions,
            accounts,
            session_name,
        })
    }

    /// Every (account, region) pair, accounts outermost, in the document's
    /// order.
    pub fn expand(&self) -> Vec<Target> {
        let accounts: Vec<Option<AccountId>> = if self.accounts.is_empty() {
            vec![None]
        } else {
            self.accounts
                .iter()
                .map(|a| Some(a.account_id.clone()))
                .collect()
        };
        let regions: Vec<Option<Region>> = if self.regions.is_empty() {
            vec![None]
        } else {
            self.regions.iter().cloned().map(Some).collect()
        };
        accounts
            .iter()
            .flat_map(|account_id| {
                regions.iter().map(|region| Target {
                    account_id: account_id.clone(),
                    region: region.clone(),
                })
            })
            .collect()
    }

    /// The configured account with this id.
    pub fn account(&self, account_id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.account_id == *account_id)
    }

    /// Whether `target` is one of the configured targets.
    pub fn contains(&self, target: &Target) -> bool {
        self.expand().contains(target)
    }
}

/// `arn:<partition>:iam::<account>:role/<path/name>`, in `account`.
fn check_role_arn(arn: &str, account: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, owner, resource] = parts[..] else {
        return Err(format!(
            "`{arn}` is not a role ARN such as arn:aws:iam::{account}:role/ecr-gc"
        ));
    };
    if prefix != "arn"
        || !matches!(partition, "aws" | "aws-cn" | "aws-us-gov")
        || service != "iam"
        || !region.is_empty()
        || resource.len() <= "role/".len()
        || !resource.starts_with("role/")
    {
        return Err(format!(
            "`{arn}` is not a role ARN such as arn:aws:iam::{account}:role/ecr-gc"
        ));
    }
    if owner != account {
        return Err(format!(
            "the role belongs to account {owner}, not to {account}, the account it is listed under"
        ));
    }
    Ok(())
}

/// STS's character set for session names and external ids: `[\w+=,.@:/-]`.
fn check_sts_text(text: &str, min: usize, max: usize) -> Result<(), String> {
    if !(min..=max).contains(&text.len()) {
        return Err(format!("must be {min} to {max} characters long"));
    }
    match text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_+=,.@:/-".contains(*c)))
    {
        Some(c) => Err(format!(
            "`{c}` is not allowed; use letters, digits and _+=,.@:/-"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expected: Result<Vec<(&str, &str)>, &str>) {
        match (Targets::parse(text), expected) {
            (Ok(targets), Ok(want)) => {
                let got: Vec<(String, String)> = targets
                    .expand()
                    .into_iter()
                    .map(|t| {
                        (
                            t.account_id.map_or("-".into(), |a| a.to_string()),
                            t.region.map_or("-".into(), |r| r.to_string()),
                        )
                    })
                    .collect();
                let want: Vec<(String, String)> = want
                    .iter()
                    .map(|(a, r)| (a.to_string(), r.to_string()))
                    .collect();
                assert_eq!(got, want);
            }
            (Err(got), Err(part)) => {
                let message = got.to_string();
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
            (got, want) => panic!("{text}\n gave {got:?}\n expected {want:?}"),
        }
    }

    const ROLE_A: &str = "arn:aws:iam::111122223333:role/ecr-gc";

    #[test]
    fn documents() {
        check("{}", Ok(vec![("-", "-")]));
        check(
            r#"{"regions": ["eu-west-1", "us-gov-west-1"]}"#,
            Ok(vec![("-", "eu-west-1"), ("-", "us-gov-west-1")]),
        );
        check(
            &format!(
                r#"{{"regions": ["eu-west-1", "us-east-1"],
                    "accounts": [{{"accountId": "111122223333", "roleArn": "{ROLE_A}", "externalId": "xyz"}},
                                 {{"accountId": "444455556666"}}]}}"#
            ),
            Ok(vec![
                ("111122223333", "eu-west-1"),
                ("111122223333", "us-east-1"),
                ("444455556666", "eu-west-1"),
                ("444455556666", "us-east-1"),
            ]),
        );
        check(
            r#"{"accounts": [{"accountId": "444455556666"}], "sessionName": "gc@org"}"#,
            Ok(vec![("444455556666", "-")]),
        );
    }

    #[test]
    fn refusals_name_the_field() {
        check(
            r#"{"region": ["eu-west-1"]}"#,
            Err("unknown field `region`"),
        );
        check(
            r#"{"regions": ["eu_west_1"]}"#,
            Err("regions[0]: `eu_west_1`"),
        );
        check(r#"{"regions": ["EU-WEST-1"]}"#, Err("regions[0]"));
        check(
            r#"{"regions": ["eu-west-1", "eu-west-1"]}"#,
            Err("regions[1]: eu-west-1 is listed twice"),
        );
        check(
            r#"{"accounts": [{"accountId": "1234"}]}"#,
            Err("accounts[0].accountId"),
        );
        check(
            r#"{"accounts": [{"accountId": "111122223333"}, {"accountId": "111122223333"}]}"#,
            Err("accounts[1].accountId: 111122223333 is listed twice"),
        );
        check(
            r#"{"accounts": [{"accountId": "444455556666", "roleArn": "arn:aws:iam::111122223333:role/ecr-gc"}]}"#,
            Err(
                "accounts[0].roleArn: the role belongs to account 111122223333, not to 444455556666",
            ),
        );
        check(
            r#"{"accounts": [{"accountId": "111122223333", "roleArn": "arn:aws:iam::111122223333:user/me"}]}"#,
            Err("is not a role ARN"),
        );
        check(
            r#"{"accounts": [{"accountId": "111122223333", "externalId": "xyz"}]}"#,
            Err("accounts[0].externalId: an external id is only used with roleArn"),
        );
        check(
            &format!(
                r#"{{"accounts": [{{"accountId": "111122223333", "roleArn": "{ROLE_A}", "externalId": "a b"}}]}}"#
            ),
            Err("accounts[0].externalId: ` ` is not allowed"),
        );
        check(
            r#"{"sessionName": "x"}"#,
            Err("sessionName: must be 2 to 64"),
        );
        check(r#"{"sessionName": "a/b"}"#, Err("sessionName"));
        check(r#"{"regions": "eu-west-1"}"#, Err("regions"));
        check("[", Err("document"));
    }
}
