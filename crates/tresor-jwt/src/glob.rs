//! Glob matching for bound claims and Kubernetes bindings: `*` matches any run of characters
//! (including none); every other character matches itself. No other metacharacters, so a
//! value with `?` or `[` is compared literally.

/// Whether `value` matches `pattern`.
pub(crate) fn matches(pattern: &str, value: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    // Iterative matching with one backtrack point (the last `*`): linear in practice and
    // never exponential.
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && p[pi] == v[vi] {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("ci", "ci", true),
            ("ci", "cid", false),
            ("ci-*", "ci-builder", true),
            ("ci-*", "prod-builder", false),
            ("*-builder", "ci-builder", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("team/*/dev", "team/x/y/dev", true),
            ("", "", true),
            ("", "x", false),
            ("a?c", "abc", false),
        ];
        for (p, v, want) in cases {
            assert_eq!(matches(p, v), want, "{p} vs {v}");
        }
    }
}
