//! Semantic versions in tags, for `orderBy: semver` and `groupBy: semver`.
//!
//! A tag is a version when it is exactly `MAJOR.MINOR.PATCH`, each a
//! decimal number without leading zeros, with an optional `-pre-release`,
//! after at most one lowercase `v`: `v1.2.3` and `1.2.3-rc.1` are versions;
//! `1.2`, `01.2.3`, `V1.2.3` and `latest` are not. (Docker tags cannot hold
//! SemVer's `+build`, so there is none.) Versions compare by SemVer 2.0
//! precedence (section 11 of the specification): numbers numerically, a
//! pre-release below its release, pre-release identifiers one by one.
//!
//! Numbers are compared as digit strings (longer is larger, then
//! lexicographically), which is numeric order without leading zeros and
//! has no overflow: every version the specification allows is one here.
//! No I/O, no allocation.

use std::cmp::Ordering;

/// A version borrowed from the tag it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version<'a> {
    /// The tag, `v` included, for messages.
    pub tag: &'a str,
    pub major: &'a str,
    pub minor: &'a str,
    pub patch: &'a str,
    /// The pre-release after `-`, if any; never empty.
    pub pre: Option<&'a str>,
}

impl<'a> Version<'a> {
    /// The version `tag` spells, if it spells one.
    pub fn parse(tag: &'a str) -> Option<Version<'a>> {
        let text = tag.strip_prefix('v').unwrap_or(tag);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let mut numbers = core.split('.');
        let (Some(major), Some(minor), Some(patch), None) = (
            numbers.next(),
            numbers.next(),
            numbers.next(),
            numbers.next(),
        ) else {
            return None;
        };
        if ![major, minor, patch].into_iter().all(is_number) {
            return None;
        }
        if let Some(pre) = pre
            && !pre.split('.').all(is_pre_release_identifier)
        {
            return None;
        }
        Some(Version {
            tag,
            major,
            minor,
            patch,
            pre,
        })
    }
}

/// A numeric identifier: digits, and no leading zero unless it is `0`.
fn is_number(text: &str) -> bool {
    !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text.len() == 1 || !text.starts_with('0'))
}

/// `[0-9A-Za-z-]+`, and no leading zero if all digits.
fn is_pre_release_identifier(text: &str) -> bool {
    if text.is_empty() {
        return false;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return is_number(text);
    }
    text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Numbers without leading zeros, as digit strings.
fn numeric(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// One pre-release identifier against another: numbers numerically, below
/// every alphanumeric identifier, which compare in ASCII order.
fn identifier(a: &str, b: &str) -> Ordering {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    match (digits(a), digits(b)) {
        (true, true) => numeric(a, b),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

impl Ord for Version<'_> {
    /// SemVer 2.0 precedence. Two tags that spell the same version (`v1.0.0`
    /// and `1.0.0`) are equal.
    fn cmp(&self, other: &Self) -> Ordering {
        numeric(self.major, other.major)
            .then_with(|| numeric(self.minor, other.minor))
            .then_with(|| numeric(self.patch, other.patch))
            .then_with(|| match (self.pre, other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => {
                    let (mut a, mut b) = (a.split('.'), b.split('.'));
                    loop {
                        match (a.next(), b.next()) {
                            (None, None) => break Ordering::Equal,
                            // A larger set of fields has higher precedence
                            // when all before are equal.
                            (None, Some(_)) => break Ordering::Less,
                            (Some(_), None) => break Ordering::Greater,
                            (Some(x), Some(y)) => match identifier(x, y) {
                                Ordering::Equal => {}
                                unequal => break unequal,
                            },
                        }
                    }
                }
            })
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Some(core, pre)` for a version, `None` for a tag that is not one.
    #[track_caller]
    fn check(tag: &str, expected: Option<(&str, Option<&str>)>) {
        let got = Version::parse(tag).map(|v| {
            (
                format!("{}.{}.{}", v.major, v.minor, v.patch),
                v.pre.map(str::to_owned),
            )
        });
        let expected = expected.map(|(core, pre)| (core.to_owned(), pre.map(str::to_owned)));
        assert_eq!(got, expected, "{tag:?}");
    }

    #[test]
    fn what_is_a_version() {
        check("1.2.3", Some(("1.2.3", None)));
        check("v1.2.3", Some(("1.2.3", None)));
        check("0.0.0", Some(("0.0.0", None)));
        check("10.20.30", Some(("10.20.30", None)));
        check("1.2.3-rc.1", Some(("1.2.3", Some("rc.1"))));
        check("1.2.3-0", Some(("1.2.3", Some("0"))));
        check("1.2.3-x-y-z.--", Some(("1.2.3", Some("x-y-z.--"))));
        check("1.2.3-0a", Some(("1.2.3", Some("0a"))));
        check(
            "99999999999999999999999.0.0",
            Some(("99999999999999999999999.0.0", None)),
        );
        for not in [
            "1.2",
            "1",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "V1.2.3",
            "vv1.2.3",
            "latest",
            "",
            "v",
            "1.2.3-",
            "1.2.3-rc..1",
            "1.2.3-01",
            "1.2.3-rc_1",
            "1.2.3+build",
            "1.2.3-rc+build",
            "a.b.c",
            "1.2.x",
            "-1.2.3",
            "1..3",
            " 1.2.3",
        ] {
            check(not, None);
        }
    }

    /// The specification's own example, section 11, ascending; each one
    /// compared with every other.
    #[test]
    fn precedence_as_the_specification_orders_it() {
        let ascending = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "1.9.0",
            "1.10.0",
            "2.0.0",
            "10.0.0",
            "100000000000000000000.0.0",
        ];
        let versions: Vec<Version> = ascending
            .iter()
            .map(|t| Version::parse(t).unwrap())
            .collect();
        for (i, a) in versions.iter().enumerate() {
            for (j, b) in versions.iter().enumerate() {
                assert_eq!(a.cmp(b), i.cmp(&j), "{} against {}", a.tag, b.tag);
            }
        }
        let (v, plain) = (
            Version::parse("v2.0.0").unwrap(),
            Version::parse("2.0.0").unwrap(),
        );
        assert_eq!(v.cmp(&plain), Ordering::Equal);
    }
}
