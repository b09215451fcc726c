//! The glob patterns of Vault's `allowed_*` constraints: `*` matches any run of characters
//! (including none, and including `.` and `/`); every other character matches itself. A
//! pattern without `*` is an exact, case-sensitive comparison.

/// Whether `subject` matches `pattern`.
pub(crate) fn matches(pattern: &str, subject: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == subject;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !subject.starts_with(first) {
        return false;
    }
    let mut rest = &subject[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether any pattern matches any of the names. An empty pattern list allows everything.
pub(crate) fn any_matches<'a>(
    patterns: &[String],
    names: impl Iterator<Item = &'a str> + Clone,
) -> bool {
    patterns.is_empty()
        || patterns
            .iter()
            .any(|p| names.clone().any(|n| matches(p, n)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("alice", "alice", true),
            ("alice", "Alice", false),
            ("alice", "alice2", false),
            ("*", "", true),
            ("*", "anything at all", true),
            ("*.example.com", "a.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("*.example.com", "example.com", false),
            ("a*c", "ac", true),
            ("a*c", "abbbc", true),
            ("a*c", "abcd", false),
            ("a*b*c", "a-b-c", true),
            ("a*b*c", "a-c-b", false),
            ("ab*ba", "aba", false),
            ("spiffe://example.org/*", "spiffe://example.org/ns/x", true),
            ("*@example.org", "alice@example.org", true),
            ("*@example.org", "alice@example.org.evil", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(matches(p, s), *want, "{p:?} vs {s:?}");
        }
    }

    #[test]
    fn empty_patterns_allow_everything_otherwise_one_match_is_enough() {
        let names = ["a.example.com", "b.example.org"];
        assert!(any_matches(&[], names.iter().copied()));
        assert!(any_matches(
            &["*.example.org".into()],
            names.iter().copied()
        ));
        assert!(!any_matches(
            &["*.example.net".into()],
            names.iter().copied()
        ));
        assert!(!any_matches(&["*".into()], std::iter::empty()));
    }
}
