//! Wildcard patterns, as ECR's `tagPatternList` defines them: `*` stands for
//! any sequence of characters, including the empty one, and every other
//! character is literal. The same matcher selects repository names in the
//! policy's `settings`.

/// A compiled wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    /// The literal pieces between the `*`s; one piece means no wildcard.
    pieces: Vec<String>,
}

impl Pattern {
    pub fn new(text: &str) -> Pattern {
        Pattern {
            text: text.to_owned(),
            pieces: text.split('*').map(str::to_owned).collect(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole of `candidate` matches (the pattern is anchored at
    /// both ends).
    pub fn matches(&self, candidate: &str) -> bool {
        let (first, rest) = match self.pieces.split_first() {
            Some(split) => split,
            None => return candidate.is_empty(),
        };
        let Some((last, middle)) = rest.split_last() else {
            return candidate == first;
        };
        if candidate.len() < first.len() + last.len()
            || !candidate.starts_with(first.as_str())
            || !candidate.ends_with(last.as_str())
        {
            return false;
        }
        // Leftmost-first placement of each middle piece is optimal for
        // `*`-only globs: it leaves the most room for the pieces after it.
        let mut window = &candidate[first.len()..candidate.len() - last.len()];
        for piece in middle {
            match window.find(piece.as_str()) {
                Some(at) => window = &window[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(pattern: &str, candidate: &str, expected: bool) {
        assert_eq!(
            Pattern::new(pattern).matches(candidate),
            expected,
            "pattern {pattern:?} against {candidate:?}"
        );
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("prod", "prod", true),
            ("prod", "prod1", false),
            ("prod*", "prod", true),
            ("prod*", "production", true),
            ("prod*", "preprod", false),
            ("*prod", "preprod", true),
            ("*prod*", "a-prod-b", true),
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("*test*1*2*3", "my-test-1-2-3", true),
            ("test*1*2*3*", "test123", true),
            ("v*.*.*", "v1.2.3", true),
            ("v*.*.*", "v1.2", false),
            ("aa*aa", "aaa", false),
            ("aa*aa", "aaaa", true),
            // The ends may not overlap: "a*a" needs two characters.
            ("a*a", "a", false),
            ("a*a", "aa", true),
            ("a?b", "axb", false),
            ("a?b", "a?b", true),
            ("a.b", "axb", false),
            ("**", "x", true),
        ];
        for (pattern, candidate, expected) in cases {
            check(pattern, candidate, expected);
        }
    }
}
