//! A collection across targets, for the Lambda handler and the CLI alike.
//!
//! 1. Reach each account once: its role is assumed with one STS AssumeRole
//!    call however many regions it is collected in; an account without a
//!    role is reached with the caller's own credentials (its own account,
//!    or a registry whose policy grants the caller access).
//! 2. Read the in-use inventories, once per *view* (the credentials an
//!    account is reached with, in a region). When the configuration names
//!    more than one view, every configured view is read, whichever targets
//!    this run collects: a workload in one account may run an image from
//!    another account's registry (a central registry is the common layout),
//!    so every registry is protected by every inventory that points into
//!    it. A view that cannot be read makes every target's inventory
//!    incomplete, so nothing is deleted, unless
//!    `settings.inUse.allowPartialInventory`. A fan-out consumer is given
//!    the other views' references in its messages instead (see [`Others`]).
//! 3. Per target (account and region), concurrently with the policy's
//!    `concurrency` bound: run the engine over that registry's repositories
//!    with the target's inventory, every ECR call carrying the target's
//!    registry id.
//! 4. Combine the target reports in target order.
//!
//! A target that cannot be reached is reported on its own, with the reason;
//! the other targets go on (held, unless partial inventories are allowed).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use futures::stream::{self, StreamExt};

use crate::aws::ecr::ApiCallCounts;
use crate::aws::ecr::Ecr;
use crate::aws::targets::{Target, Targets};
use crate::aws::{Clients, Connector, Credentials};
use crate::inventory::{self, Foreign, Inventory, Registry, SourceReport};
use crate::model::{AccountId, Region, RepositoryName};
use crate::policy::Policy;
use crate::policy::settings::InUseSources;
use crate::run::engine::{self, Run, Scope};
use crate::run::lines::{self, ForTarget, Level, LogSink, Step};
use crate::run::report::{self, Collection, TargetReport};

/// The credentials an inventory is read with, and the region: whose
/// workloads it sees. The account is `None` for the caller's own
/// credentials (its own account, and accounts listed without a role).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct View {
    pub credentials: Option<AccountId>,
    pub region: Option<Region>,
}

/// The credentials of each account a run needs, and what reaching them
/// cost.
pub struct Accounts {
    credentials: BTreeMap<Option<AccountId>, Result<Credentials, String>>,
    /// The caller's own account, when the run needed to know it.
    own: Option<Result<String, String>>,
    /// Accounts configured without a role.
    without_role: BTreeSet<AccountId>,
    pub assume_role_calls: u64,
}

impl Accounts {
    /// Reaches every account that `targets` name, concurrently. The
    /// caller's own account is looked up (one GetCallerIdentity) when
    /// `own_needed`, or when an account is listed without a role.
    pub async fn connect<'a>(
        connector: &Connector,
        config: &Targets,
        targets: impl IntoIterator<Item = &'a Target>,
        own_needed: bool,
    ) -> Accounts {
        let wanted: BTreeSet<Option<AccountId>> =
            targets.into_iter().map(|t| t.account_id.clone()).collect();
        let without_role: BTreeSet<AccountId> = wanted
            .iter()
            .flatten()
            .filter(|id| config.account(id).is_some_and(|a| a.role_arn.is_none()))
            .cloned()
            .collect();
        let own = if own_needed || !without_role.is_empty() {
            Some(connector.own_account().await.map_err(|e| e.to_string()))
        } else {
            None
        };
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
        let mut assume_role_calls = 0;
        for (account_id, assumed, result) in reached {
            assume_role_calls += u64::from(assumed);
            credentials.insert(account_id, result);
        }
        Accounts {
            credentials,
            own,
            without_role,
            assume_role_calls,
        }
    }

    /// Whose credentials reach `target`, in its region.
    pub fn view(&self, target: &Target) -> View {
        View {
            credentials: target
                .account_id
                .clone()
                .filter(|id| !self.without_role.contains(id)),
            region: target.region.clone(),
        }
    }

    /// The registry `target` names: its account (the caller's own when it
    /// names none) in its region (the caller's own when it names none).
    pub fn registry(&self, connector: &Connector, target: &Target) -> Registry {
        let account = match (&target.account_id, &self.own) {
            (Some(id), _) => id.to_string(),
            (None, Some(Ok(own))) => own.clone(),
            (None, _) => "own account".to_owned(),
        };
        let region = target
            .region
            .as_ref()
            .map(|r| r.to_string())
            .or_else(|| connector.home().region.clone())
            .unwrap_or_else(|| "own region".to_owned());
        Registry { account, region }
    }

    /// What `target`'s inventory cannot see because its account is reached
    /// without a role (with the caller's own credentials, whose ECS and
    /// Lambda are the caller's): a failed report line, so that nothing is
    /// deleted, unless an external list speaks for its workloads or the
    /// settings allow a partial inventory; then a note.
    pub fn blind(&self, target: &Target, sources: &InUseSources) -> Option<SourceReport> {
        let id = target.account_id.as_ref()?;
        if !self.without_role.contains(id) || !sources.any() {
            return None;
        }
        let (error, note) = match &self.own {
            Some(Ok(own)) if id.as_str() == own => return None,
            Some(Ok(own)) => {
                let what = format!(
                    "account {id} is collected with the caller's own credentials (account {own}): the ECS and Lambda sources see account {own}'s workloads, not account {id}'s"
                );
                if sources.any_external() {
                    (
                        None,
                        Some(format!(
                            "{what}; its workloads are seen only through the external in-use list"
                        )),
                    )
                } else if sources.allow_partial_inventory {
                    (
                        None,
                        Some(format!("{what}; collected anyway (allowPartialInventory)")),
                    )
                } else {
                    (
                        Some(format!(
                            "{what}, so nothing is deleted in it: give it a roleArn, list its workloads' images in an external in-use list, or set settings.inUse.allowPartialInventory"
                        )),
                        None,
                    )
                }
            }
            Some(Err(e)) => (
                Some(format!(
                    "account {id} is collected with the caller's own credentials, whose account could not be read ({e}), so what it runs cannot be told"
                )),
                None,
            ),
            None => return None,
        };
        Some(SourceReport {
            source: format!("workloads of {id}"),
            references: 0,
            error,
            note,
        })
    }

    /// The clients for `target`, or why its account could not be reached.
    fn clients(&self, connector: &Connector, target: &Target) -> Result<Clients, String> {
        match self.credentials.get(&target.account_id) {
            Some(Ok(credentials)) => Ok(connector.clients(target.region.as_deref(), credentials)),
            Some(Err(error)) => Err(error.clone()),
            None => Err(format!("account of {target}: not reached")),
        }
    }
}

/// Whether the configuration names more than one view, so that one
/// account's workloads may run another registry's images.
pub fn organisation_wide(config: &Targets, sources: &InUseSources) -> bool {
    if !sources.any() {
        return false;
    }
    let views: BTreeSet<(Option<AccountId>, Option<Region>)> = config
        .expand()
        .into_iter()
        .map(|t| {
            let credentials = t
                .account_id
                .filter(|id| config.account(id).is_some_and(|a| a.role_arn.is_some()));
            (credentials, t.region)
        })
        .collect();
    views.len() > 1
}

/// The in-use inventories a run read, one per view.
pub struct Inventories {
    views: BTreeMap<View, Inventory>,
}

impl Inventories {
    /// Reads the inventory of every view of `targets`, concurrently.
    pub async fn read(
        connector: &Connector,
        accounts: &Accounts,
        policy: &Policy,
        targets: &[Target],
    ) -> Inventories {
        let sources = &policy.settings.in_use;
        let mut views: BTreeMap<View, Target> = BTreeMap::new();
        for target in targets {
            views
                .entry(accounts.view(target))
                .or_insert_with(|| target.clone());
        }
        let own = accounts.own.as_ref().and_then(|o| o.as_ref().ok()).cloned();
        let read = stream::iter(views)
            .map(|(view, target)| {
                let own = own.clone();
                async move {
                    let inventory = if !sources.any() {
                        Inventory::none()
                    } else {
                        match accounts.clients(connector, &target) {
                            Ok(clients) => {
                                let account = view.credentials.as_deref().or(own.as_deref());
                                inventory::collect(&clients, sources, account).await
                            }
                            Err(error) => Inventory {
                                registry: Some(accounts.registry(connector, &target)),
                                uses: Vec::new(),
                                sources: vec![SourceReport {
                                    source: "sts".into(),
                                    references: 0,
                                    error: Some(error),
                                    note: None,
                                }],
                            },
                        }
                    };
                    (view, inventory)
                }
            })
            .buffer_unordered(policy.settings.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        Inventories {
            views: read.into_iter().collect(),
        }
    }

    /// What every view but `home` says about `registry` (only its
    /// `repository`, if given).
    pub fn foreign(&self, home: &View, registry: &Registry, repository: Option<&str>) -> Foreign {
        let others: Vec<&Inventory> = self
            .views
            .iter()
            .filter(|(view, _)| *view != home)
            .map(|(_, inventory)| inventory)
            .collect();
        Foreign::of(registry, repository, &others)
    }
}

/// Where a run learns what the other views' workloads use.
pub enum Others {
    /// Read them (every configured view, when there is more than one).
    Read,
    /// Given, per target: a fan-out consumer's messages carry what the
    /// scheduled run read.
    Given(BTreeMap<Target, Foreign>),
}

/// Collects each target in `work` with its scope. `run` carries the
/// trigger, dry run, `now` and deadline; its own scope is not used.
pub async fn collect(
    connector: &Connector,
    config: &Targets,
    policy: &Policy,
    run: &Run,
    work: Vec<(Target, Scope)>,
    others: Others,
    log: &dyn LogSink,
) -> Collection {
    let started = Instant::now();
    let sources = &policy.settings.in_use;
    let org_wide = organisation_wide(config, sources);
    let mut views: Vec<Target> = work.iter().map(|(t, _)| t.clone()).collect();
    if org_wide && matches!(others, Others::Read) {
        views.extend(config.expand());
    }
    let accounts = Accounts::connect(connector, config, &views, sources.any()).await;
    let inventories = Inventories::read(connector, &accounts, policy, &views).await;
    let (accounts, inventories, others) = (&accounts, &inventories, &others);
    let concurrency = policy.settings.concurrency.max(1);
    log.progress(Step::Targets(work.len()));
    let targets: Vec<TargetReport> = stream::iter(work)
        .map(|(target, scope)| async move {
            let log = ForTarget {
                inner: log,
                target: &target,
            };
            let result = collect_one(
                connector,
                accounts,
                inventories,
                others,
                policy,
                run,
                &target,
                scope,
                &log,
            )
            .await;
            if let Err(error) = &result {
                log.emit(lines::line(
                    Level::Error,
                    "target not collected",
                    serde_json::json!({ "error": error }),
                ));
            }
            let (report, error) = match result {
                Ok(report) => (Some(report), None),
                Err(error) => (None, Some(error)),
            };
            log.progress(Step::Target);
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
        run.trigger,
        run.dry_run,
        run.now,
        targets,
        accounts.assume_role_calls,
        u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    )
}

#[allow(clippy::too_many_arguments)]
async fn collect_one(
    connector: &Connector,
    accounts: &Accounts,
    inventories: &Inventories,
    others: &Others,
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
    let sources = &policy.settings.in_use;
    let view = accounts.view(target);
    let registry = accounts.registry(connector, target);
    let blind = accounts.blind(target, sources);
    if let Some(blind) = &blind {
        log.emit(lines::line(
            Level::Warn,
            "in-use sources limited to the caller's account",
            serde_json::json!({ "warning": blind.error.as_ref().or(blind.note.as_ref()) }),
        ));
    }
    let foreign = match others {
        Others::Read if inventories.views.len() > 1 => {
            Some(inventories.foreign(&view, &registry, None))
        }
        Others::Read => None,
        Others::Given(given) => Some(given.get(target).cloned().unwrap_or_default()),
    };
    let none = Inventory::none();
    let home = inventories.views.get(&view).unwrap_or(&none);
    let inventory = inventory::for_target(
        registry,
        home,
        foreign.as_ref(),
        sources.allow_partial_inventory,
        blind,
    );
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
/// sorted; or why they could not be listed. With them, what the other
/// views' workloads use of each (when the configuration has more than one
/// view), for the fan-out messages.
pub struct Listing {
    pub target: Target,
    pub repositories: Result<Vec<RepositoryName>, String>,
    pub foreign: BTreeMap<RepositoryName, Foreign>,
}

/// Lists the selected repositories of every target (for fan-out), with the
/// ECR calls and AssumeRole calls that took. When the configuration names
/// more than one view, every view's inventory is read too, so that each
/// message can carry what other accounts' workloads use of its repository.
pub async fn list_targets(
    connector: &Connector,
    config: &Targets,
    policy: &Policy,
    targets: Vec<Target>,
) -> (Vec<Listing>, ApiCallCounts, u64) {
    let sources = &policy.settings.in_use;
    let org_wide = organisation_wide(config, sources);
    let accounts = Accounts::connect(connector, config, &targets, org_wide).await;
    let inventories = if org_wide {
        Some(Inventories::read(connector, &accounts, policy, &targets).await)
    } else {
        None
    };
    let (accounts, inventories) = (&accounts, &inventories);
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
                            foreign: BTreeMap::new(),
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
            let mut foreign = BTreeMap::new();
            if let (Some(inventories), Ok(names)) = (inventories, &repositories) {
                let view = accounts.view(&target);
                let registry = accounts.registry(connector, &target);
                for name in names {
                    foreign.insert(
                        name.clone(),
                        inventories.foreign(&view, &registry, Some(name)),
                    );
                }
            }
            (
                Listing {
                    target,
                    repositories,
                    foreign,
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
