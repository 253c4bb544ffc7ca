//! Names that come from outside ecr-gc and name an AWS thing: a repository,
//! an account, a region. Each is checked once, where it enters (an event, a
//! queued message, the configuration, a command-line flag), against the
//! rules AWS itself applies, so that a bad name is refused before any API
//! call; past that point its type says it was checked.
//!
//! Names that ECR itself returns (from DescribeRepositories) are taken as
//! given: they were valid when ECR accepted them.

use std::fmt;

use serde::Serialize;
use thiserror::Error;

/// Why a name was refused; the message says what was received and what
/// AWS allows.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("repository name `{name}` is {len} characters long; ECR allows 2 to 256")]
    RepositoryLength { name: String, len: usize },
    #[error(
        "repository name `{0}` does not match ECR's pattern: lowercase letters and digits, with `.`, `_` or `-` inside a component and `/` between components"
    )]
    RepositoryPattern(String),
    #[error("registry id `{0}` is not an AWS account id (12 digits)")]
    AccountId(String),
    #[error("`{0}` is not a region name such as eu-west-1")]
    Region(String),
}

/// Defines a checked name: a `String` that only `parse` makes, readable as
/// a `&str` and printed, compared and serialised as the plain name.
macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks `name`, and keeps it if AWS would accept it.
            pub fn parse(name: impl Into<String>) -> Result<$name, NameError> {
                let name = name.into();
                $check(&name)?;
                Ok($name(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        /// Tests name things with literals they know to be valid.
        #[cfg(test)]
        impl From<&str> for $name {
            fn from(name: &str) -> $name {
                $name::parse(name).unwrap()
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<$name, D::Error> {
                let name = String::deserialize(de)?;
                $name::parse(name).map_err(serde::de::Error::custom)
            }
        }
    };
}

checked_name!(
    /// An ECR repository name: 2 to 256 characters; lowercase path
    /// components of letters and digits, separated inside by `.`, `_` or
    /// `-`, and joined by `/`.
    RepositoryName,
    check_repository_name
);

checked_name!(
    /// An AWS account id (an ECR registry id): 12 digits.
    AccountId,
    check_account_id
);

checked_name!(
    /// A region name as AWS spells them: `eu-west-1`, `us-gov-west-1`,
    /// `ap-southeast-5`.
    Region,
    check_region
);

impl RepositoryName {
    /// A name ECR returned: it accepted the name, so it is not checked again.
    pub fn from_ecr(name: String) -> RepositoryName {
        RepositoryName(name)
    }
}

fn check_repository_name(name: &str) -> Result<(), NameError> {
    let len = name.len();
    if !(2..=256).contains(&len) {
        return Err(NameError::RepositoryLength {
            name: name.to_owned(),
            len,
        });
    }
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let separator = |b: &u8| b"._-".contains(b);
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes.iter().all(|b| edge(b) || separator(b))
            && !bytes
                .windows(2)
                .any(|w| separator(&w[0]) && separator(&w[1]))
    };
    if name.split('/').all(component_ok) {
        Ok(())
    } else {
        Err(NameError::RepositoryPattern(name.to_owned()))
    }
}

fn check_account_id(id: &str) -> Result<(), NameError> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(NameError::AccountId(id.to_owned()))
    }
}

fn check_region(region: &str) -> Result<(), NameError> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = match parts.split_last() {
        Some((number, words)) => {
            parts.len() >= 3
                && region.len() <= 32
                && words
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
                && !number.is_empty()
                && number.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(NameError::Region(region.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check<T: fmt::Debug>(parse: fn(&str) -> Result<T, NameError>, good: &[&str], bad: &[&str]) {
        for name in good {
            assert!(parse(name).is_ok(), "{name}");
        }
        for name in bad {
            assert!(parse(name).is_err(), "{name}");
        }
    }

    #[test]
    fn repository_names() {
        let long = "a".repeat(256);
        let too_long = "a".repeat(257);
        check(
            |n| RepositoryName::parse(n),
            &["ab", "web", "team/web", "a.b_c-d/e2", "0x", &long],
            &[
                "a",
                "",
                "Web",
                "team//web",
                "/web",
                "web/",
                "-web",
                "web-",
                "a..b",
                "a b",
                "ä1",
                &too_long,
            ],
        );
    }

    #[test]
    fn account_ids() {
        check(
            |n| AccountId::parse(n),
            &["123456789012"],
            &[
                "",
                "12345678901",
                "1234567890123",
                "12345678901a",
                " 23456789012",
            ],
        );
    }

    #[test]
    fn regions() {
        check(
            |n| Region::parse(n),
            &["eu-west-1", "us-gov-west-1", "ap-southeast-5"],
            &["", "mars", "eu-west", "EU-west-1", "eu--1", "eu-west-x"],
        );
    }

    #[test]
    fn a_checked_name_deserialises_only_if_it_parses() {
        let ok: RepositoryName = serde_json::from_str(r#""team/web""#).unwrap();
        assert_eq!(ok, "team/web");
        assert_eq!(serde_json::to_string(&ok).unwrap(), r#""team/web""#);
        assert!(serde_json::from_str::<RepositoryName>(r#""Web""#).is_err());
        assert!(serde_json::from_str::<Region>(r#""mars""#).is_err());
    }
}
