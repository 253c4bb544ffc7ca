//! Regular expressions on tags (`tagRegexList`, `groupBy.tagRegex`), an
//! ecr-gc extension.
//!
//! The syntax is the Rust `regex` crate's, which runs in time linear in the
//! tag (no backtracking), so a hostile pattern cannot stall a run. A
//! pattern matches a tag only if it matches the whole tag. What one policy
//! may compile is bounded: [`MAX_REGEX_CHARS`] per pattern,
//! [`MAX_COMPILED_BYTES`] per compiled pattern, and [`MAX_REGEXES`] in the
//! whole document, so that a 30 KB document cannot ask for gigabytes.

use regex::{Regex, RegexBuilder};

/// The longest pattern, in characters.
pub const MAX_REGEX_CHARS: usize = 256;

/// The most patterns in one document, lists and groups together.
pub const MAX_REGEXES: usize = 64;

/// The most memory one compiled pattern may take (the crate's
/// `size_limit`, and its lazy DFA's cache), in bytes.
pub const MAX_COMPILED_BYTES: usize = 1 << 20;

/// A compiled pattern, anchored at both ends, with the text it came from.
#[derive(Debug, Clone)]
pub struct TagRegex {
    text: String,
    regex: Regex,
}

impl PartialEq for TagRegex {
    /// Two patterns are the same when they are spelled the same.
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl TagRegex {
    /// Compiles `text`, or says why it cannot be used.
    pub fn new(text: &str) -> Result<TagRegex, String> {
        let chars = text.chars().count();
        if chars > MAX_REGEX_CHARS {
            return Err(format!(
                "pattern {text:?} is {chars} characters long; at most {MAX_REGEX_CHARS} are allowed"
            ));
        }
        let regex = RegexBuilder::new(&format!("^(?:{text})$"))
            .size_limit(MAX_COMPILED_BYTES)
            .dfa_size_limit(MAX_COMPILED_BYTES)
            .build()
            .map_err(|error| match error {
                regex::Error::CompiledTooBig(_) => format!(
                    "pattern {text:?} compiles to more than {} KiB; simplify it",
                    MAX_COMPILED_BYTES / 1024
                ),
                other => format!(
                    "pattern {text:?} is not a valid regular expression: {}",
                    one_line(&other.to_string())
                ),
            })?;
        Ok(TagRegex {
            text: text.to_owned(),
            regex,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches the whole of `tag`.
    pub fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }

    /// Whether the pattern has a capture group named `name`.
    pub fn has_group(&self, name: &str) -> bool {
        self.regex.capture_names().any(|n| n == Some(name))
    }

    /// The text the group `name` captured, when the pattern matches the
    /// whole of `tag` and the group took part in the match.
    pub fn capture<'t>(&self, tag: &'t str, name: &str) -> Option<&'t str> {
        self.regex
            .captures(tag)
            .and_then(|captures| captures.name(name))
            .map(|m| m.as_str())
    }
}

/// The crate's multi-line error (pattern, caret, message) on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("regex parse error") && !l.starts_with('^'))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(pattern: &str, tag: &str, expected: bool) {
        let regex = TagRegex::new(pattern).unwrap();
        assert_eq!(regex.matches(tag), expected, "{pattern:?} against {tag:?}");
    }

    #[test]
    fn a_pattern_matches_the_whole_tag() {
        let cases = [
            ("main-.*", "main-abc", true),
            ("main-.*", "x-main-abc", false),
            ("main", "main-1", false),
            ("a|b", "a", true),
            ("a|b", "ab", false),
            ("v[0-9]+", "v12", true),
            ("v[0-9]+", "v12a", false),
            ("(?i)prod", "PROD", true),
            ("", "", true),
            (".*", "", true),
        ];
        for (pattern, tag, expected) in cases {
            check(pattern, tag, expected);
        }
    }

    #[test]
    fn refusals_say_why() {
        let refused = |pattern: &str, part: &str| {
            let error = TagRegex::new(pattern).unwrap_err();
            assert!(error.contains(part), "{error:?} lacks {part:?}");
            assert!(!error.contains('\n'), "{error:?} is one line");
        };
        refused("(", "not a valid regular expression");
        refused("a{5", "not a valid regular expression");
        refused(&"a".repeat(MAX_REGEX_CHARS + 1), "at most 256");
        refused(r"\w{200}\w{200}", "compiles to more than 1024 KiB");
        // Backreferences and lookaround, which need backtracking, do not exist.
        refused(r"(a)\1", "not a valid regular expression");
        refused(r"(?=a)a", "not a valid regular expression");
    }

    #[test]
    fn captures_a_named_group_of_a_whole_match() {
        let regex = TagRegex::new("(?P<group>[a-z]+)-[0-9a-f]{7}").unwrap();
        assert!(regex.has_group("group"));
        assert!(!TagRegex::new("([a-z]+)-x").unwrap().has_group("group"));
        assert_eq!(regex.capture("main-abc1234", "group"), Some("main"));
        assert_eq!(regex.capture("main-abc1234x", "group"), None);
        let optional = TagRegex::new("(?P<group>a)?b").unwrap();
        assert_eq!(optional.capture("b", "group"), None);
    }
}
