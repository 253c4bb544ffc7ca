//! ecr-gc's own settings: the policy document's optional `settings` object.
//!
//! ```json
//! "settings": {
//!   "repositories": { "include": ["team-a/*"], "exclude": ["team-a/base"] },
//!   "gracePeriodMinutes": 60,
//!   "maxDeletesPerRun": 1000,
//!   "maxDeletesPerRepository": 200,
//!   "allowDeletingEveryImage": false
//! }
//! ```
//!
//! Every field is optional; the defaults are the safe choice. Unknown fields
//! are refused, like everywhere in the policy document. This module does no
//! I/O.

use serde::Deserialize;
use serde_json::Value;

use crate::pattern::Pattern;
use crate::policy::PolicyError;

/// How long after a push an image is never deleted, by default. A multi-arch
/// push uploads the children before the index, and a deployment may pull a
/// fresh image minutes after it lands.
pub const DEFAULT_GRACE_PERIOD_MINUTES: u64 = 60;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    pub repositories: RepositoryFilter,
    pub safety: Safety,
}

/// The limits that hold whatever the rules say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Safety {
    /// Images pushed less than this many minutes ago are never deleted.
    pub grace_period_minutes: u64,
    /// A repository whose deletions would take the run past this many gets
    /// none.
    pub max_deletes_per_run: Option<u64>,
    /// A repository whose plan deletes more than this many gets none.
    pub max_deletes_per_repository: Option<u64>,
    /// Unless true, a plan that would delete every image of a repository
    /// deletes none of them.
    pub allow_deleting_every_image: bool,
}

impl Default for Safety {
    fn default() -> Self {
        Safety {
            grace_period_minutes: DEFAULT_GRACE_PERIOD_MINUTES,
            max_deletes_per_run: None,
            max_deletes_per_repository: None,
            allow_deleting_every_image: false,
        }
    }
}

/// Which repositories a scheduled or push-triggered run collects. A name is
/// selected when it matches some `include` glob and no `exclude` glob.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryFilter {
    pub include: Vec<Pattern>,
    pub exclude: Vec<Pattern>,
}

impl Default for RepositoryFilter {
    fn default() -> Self {
        RepositoryFilter {
            include: vec![Pattern::new("*")],
            exclude: Vec::new(),
        }
    }
}

impl RepositoryFilter {
    pub fn selects(&self, repository_name: &str) -> bool {
        self.include.iter().any(|p| p.matches(repository_name))
            && !self.exclude.iter().any(|p| p.matches(repository_name))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSettings {
    repositories: Option<RawRepositoryFilter>,
    grace_period_minutes: Option<u64>,
    max_deletes_per_run: Option<u64>,
    max_deletes_per_repository: Option<u64>,
    allow_deleting_every_image: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepositoryFilter {
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
}

fn invalid(at: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

/// Parses the document's `settings` value; `None` gives the defaults.
pub fn parse(value: Option<Value>) -> Result<Settings, PolicyError> {
    let Some(value) = value else {
        return Ok(Settings::default());
    };
    let raw: RawSettings = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            "settings".to_owned()
        } else {
            format!("settings.{path}")
        };
        invalid(at, e.into_inner().to_string())
    })?;
    let mut settings = Settings::default();
    if let Some(filter) = raw.repositories {
        if let Some(include) = filter.include {
            if include.is_empty() {
                return Err(invalid(
                    "settings.repositories.include",
                    "must not be empty; leave it out to select every repository",
                ));
            }
            settings.repositories.include = include.iter().map(|p| Pattern::new(p)).collect();
        }
        if let Some(exclude) = filter.exclude {
            settings.repositories.exclude = exclude.iter().map(|p| Pattern::new(p)).collect();
        }
    }
    let safety = &mut settings.safety;
    safety.grace_period_minutes = raw
        .grace_period_minutes
        .unwrap_or(DEFAULT_GRACE_PERIOD_MINUTES);
    safety.max_deletes_per_run = raw.max_deletes_per_run;
    safety.max_deletes_per_repository = raw.max_deletes_per_repository;
    safety.allow_deleting_every_image = raw.allow_deleting_every_image.unwrap_or(false);
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(settings: &str, expected: Result<Settings, &str>) {
        let value = serde_json::from_str(settings).unwrap();
        match (parse(Some(value)), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(got), Err(part)) => {
                let message = got.to_string();
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
            (got, want) => panic!("{settings}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn safety_settings() {
        check("{}", Ok(Settings::default()));
        let expected = Settings {
            safety: Safety {
                grace_period_minutes: 0,
                max_deletes_per_run: Some(10),
                max_deletes_per_repository: Some(0),
                allow_deleting_every_image: true,
            },
            ..Settings::default()
        };
        check(
            r#"{"gracePeriodMinutes":0,"maxDeletesPerRun":10,"maxDeletesPerRepository":0,"allowDeletingEveryImage":true}"#,
            Ok(expected),
        );
        check(
            r#"{"gracePeriodMinutes":-1}"#,
            Err("settings.gracePeriodMinutes: invalid value"),
        );
        check(
            r#"{"maxDeletesPerRun":"10"}"#,
            Err("settings.maxDeletesPerRun: invalid type"),
        );
        check(r#"{"gracePeriod":5}"#, Err("unknown field `gracePeriod`"));
        check(
            r#"{"repositories":{"include":[]}}"#,
            Err("settings.repositories.include"),
        );
        check(
            r#"{"repositories":{"exclude":[1]}}"#,
            Err("settings.repositories.exclude[0]"),
        );
    }

    #[test]
    fn repository_selection() {
        let filter = |json: &str| {
            parse(Some(serde_json::from_str(json).unwrap()))
                .unwrap()
                .repositories
        };
        assert!(filter("{}").selects("anything/at/all"));
        let some = filter(
            r#"{"repositories":{"include":["team-a/*","tools"],"exclude":["team-a/keep-*"]}}"#,
        );
        assert!(some.selects("team-a/web"));
        assert!(some.selects("tools"));
        assert!(!some.selects("tools2"));
        assert!(!some.selects("team-a/keep-forever"));
        assert!(!some.selects("team-b/web"));
    }
}
