//! A collection across targets, for the Lambda handler and the CLI alike.
//!
//! 1. Reach each target account once: its role is assumed with one STS
//!    AssumeRole call however many regions it is collected in; an account
//!    without a role is reached with the caller's own credentials (its own
//!    account, or a registry whose policy grants the caller access).
//! 2. Per target (account and region), concurrently with the policy's
//!    `concurrency` bound: collect the in-use inventory once, then run the
//!    engine over that registry's repositories, every ECR call carrying the
//!    target's registry id.
//! 3. Combine the target reports in target order.
//!
//! A target that cannot be reached is reported on its own, with the reason;
//! the other targets go on. An account's inventory protects only its own
//! registry's images in that region (see `inventory`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::stream::{self, StreamExt};

use crate::aws::{Clients, Connector, Credentials};
use crate::ecr::Ecr;
use crate::engine::{self, Run, Scope};
use crate::inventory;
use crate::policy::Policy;
use crate::report::{self, ApiCallCounts, Collection, ForTarget, LogSink, TargetReport};
use crate::targets::{Target, Targets};

/// The credentials of each account a run needs, and what reaching them
/// cost.
pub struct Accounts {
    credentials: BTreeMap<Option<String>, Result<Credentials, String>>,
    /// Accounts reached with the caller's own credentials that are not the
    /// caller's account: what their inventories cannot see.
    warnings: BTreeMap<String, String>,
    pub assume_role_calls: u64,
}

impl Accounts {
    /// Reaches every account that `targets` name, concurrently.
    pub async fn connect<'a>(
        connector: &Connector,
        config: &Targets,
        targets: impl IntoIterator<Item = &'a Target>,
    ) -> Accounts {
        let wanted: BTreeSet<Option<String>> =
            targets.into_iter().map(|t| t.account_id.clone()).collect();
        // Accounts listed without a role are reached with the caller's own
        // credentials; if one is not the caller's account, its workloads are
        // out of sight, and the run says so.
        let mut warnings = BTreeMap::new();
        let without_role: Vec<&String> = wanted
            .iter()
            .flatten()
            .filter(|id| config.account(id).is_some_and(|a| a.role_arn.is_none()))
            .collect();
        if !without_role.is_empty() {
            let own = connector.own_account().await;
            for id in without_role {
                let warning = match &own {
                    Ok(own) if own == id => continue,
                    Ok(own) => format!(
                        "account {id} is collected with the caller's own credentials (account {own}): the in-use sources see account {own}'s workloads, not account {id}'s; list its workloads' images in an external in-use list, or give it a roleArn"
                    ),
                    Err(e) => format!(
                        "account {id} is collected with the caller's own credentials, whose account could not be read ({e}): the in-use sources may not see account {id}'s workloads"
                    ),
                };
                warnings.insert(id.clone(), warning);
            }
        }
        let mut assume_role_calls = 0;
        let reached = stream::iter(wanted)
            .map(|account_id| async move {
                let Some(id) = &account_id else {
                    return (account_id, false, Ok(Credentials::Own));
                };
                match config.account(id) {
                    None => (
                        account_id.clone(),
                        false,
                        Err(format!(
                            "account {id} is not among the configured targets (ECR_GC_TARGETS)"
                        )),
                    ),
                    Some(account) => match &account.role_arn {
                        None => (account_id.clone(), false, Ok(Credentials::Own)),
                        Some(role) => {
                            let assumed = connector
                                .assume(role, &config.session_name, account.external_id.as_deref())
                                .await
                                .map_err(|e| format!("could not assume {role}: {e}"));
                            (account_id.clone(), true, assumed)
                        }
                    },
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        let mut credentials = BTreeMap::new();
        for (account_id, assumed, result) in reached {
            assume_role_calls += u64::from(assumed);
            credentials.insert(account_id, result);
        }
        Accounts {
            credentials,
            warnings,
            assume_role_calls,
        }
    }

    /// What the run must say about `target`'s account, if anything.
    pub fn warning(&self, target: &Target) -> Option<&str> {
        self.warnings
            .get(target.account_id.as_deref()?)
            .map(String::as_str)
    }

    /// The clients for `target`, or why its account could not be reached.
    pub fn clients(&self, connector: &Connector, target: &Target) -> Result<Clients, String> {
        match self.credentials.get(&target.account_id) {
            Some(Ok(credentials)) => Ok(connector.clients(target.region.as_deref(), credentials)),
            Some(Err(error)) => Err(error.clone()),
            None => Err(format!("account of {target}: not reached")),
        }
    }
}

/// Collects each target in `work` with its scope. `run` carries the
/// trigger, dry run, `now` and deadline; its own scope is not used.
pub async fn collect(
    connector: &Connector,
    config: &Targets,
    policy: &Policy,
    run: &Run,
    work: Vec<(Target, Scope)>,
    log: &dyn LogSink,
) -> Collection {
    let started = Instant::now();
    let accounts = Accounts::connect(connector, config, work.iter().map(|(t, _)| t)).await;
    let accounts = &accounts;
    let concurrency = policy.settings.concurrency.max(1);
    let targets: Vec<TargetReport> = stream::iter(work)
        .map(|(target, scope)| async move {
            let log = ForTarget {
                inner: log,
                target: &target,
            };
            let result = collect_one(connector, accounts, policy, run, &target, scope, &log).await;
            if let Err(error) = &result {
                log.emit(report::line(
                    "ERROR",
                    "target not collected",
                    serde_json::json!({ "error": error }),
                ));
            }
            let (report, error) = match result {
                Ok(report) => (Some(report), None),
                Err(error) => (None, Some(error)),
            };
            TargetReport {
                target,
                error,
                report,
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    Collection::new(
        &run.trigger,
        run.dry_run,
        run.now,
        targets,
        accounts.assume_role_calls,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    )
}

async fn collect_one(
    connector: &Connector,
    accounts: &Accounts,
    policy: &Policy,
    run: &Run,
    target: &Target,
    scope: Scope,
    log: &dyn LogSink,
) -> Result<report::Report, String> {
    if run.stop_at.is_some_and(|stop| Instant::now() >= stop) {
        return Err("not started: the invocation's deadline was near".into());
    }
    let clients = accounts.clients(connector, target)?;
    if let Some(warning) = accounts.warning(target) {
        log.emit(report::line(
            "WARN",
            "in-use sources limited to the caller's account",
            serde_json::json!({ "warning": warning }),
        ));
    }
    let inventory = inventory::collect(
        &clients,
        &policy.settings.in_use,
        target.account_id.as_deref(),
    )
    .await;
    let ecr = Ecr::new(clients.ecr.clone(), target.account_id.clone()).with_stop_at(run.stop_at);
    let run = Run {
        scope,
        ..run.clone()
    };
    engine::run(&ecr, &inventory, policy, &run, log)
        .await
        .map_err(|e| e.to_string())
}

/// The repositories of one target that the policy's settings select,
/// sorted; or why they could not be listed.
pub struct Listing {
    pub target: Target,
    pub repositories: Result<Vec<String>, String>,
}

/// Lists the selected repositories of every target (for fan-out), with the
/// ECR calls and AssumeRole calls that took.
pub async fn list_targets(
    connector: &Connector,
    config: &Targets,
    policy: &Policy,
    targets: Vec<Target>,
) -> (Vec<Listing>, ApiCallCounts, u64) {
    let accounts = Accounts::connect(connector, config, &targets).await;
    let accounts = &accounts;
    let concurrency = policy.settings.concurrency.max(1);
    let listed: Vec<(Listing, ApiCallCounts)> = stream::iter(targets)
        .map(|target| async move {
            let clients = match accounts.clients(connector, &target) {
                Ok(clients) => clients,
                Err(error) => {
                    return (
                        Listing {
                            target,
                            repositories: Err(error),
                        },
                        ApiCallCounts::default(),
                    );
                }
            };
            let ecr = Ecr::new(clients.ecr.clone(), target.account_id.clone());
            let repositories = ecr
                .repository_names()
                .await
                .map(|mut names| {
                    names.retain(|n| policy.settings.repositories.selects(n));
                    names.sort();
                    names
                })
                .map_err(|e| format!("could not list the repositories: {e}"));
            (
                Listing {
                    target,
                    repositories,
                },
                ecr.api_calls(),
            )
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut calls = ApiCallCounts::default();
    let listings = listed
        .into_iter()
        .map(|(listing, c)| {
            calls += &c;
            listing
        })
        .collect();
    (listings, calls, accounts.assume_role_calls)
}
