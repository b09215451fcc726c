//! Password policies in Vault's HCL (`length`, and `rule "charset"` blocks with `charset` and
//! `min-chars`), and generation from them.
//!
//! Generation is rejection sampling twice over: each character is an unbiased draw from the
//! union of the rules' charsets (random bytes at or above the largest multiple of the
//! charset's size are thrown away, so no character is likelier than another), and a candidate
//! that misses a rule's `min-chars` is thrown away whole. The accepted passwords are therefore
//! uniform over every password the policy allows, which filling the minimums first and
//! shuffling would not give.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// The longest password a policy may ask for.
const MAX_LENGTH: usize = 4096;
/// Candidates tried before a policy is declared too strict to satisfy by chance.
const MAX_ATTEMPTS: usize = 100_000;
/// The most work one generation may do, in characters drawn and checked against a rule:
/// long passwords and many rules get fewer candidates, so a policy that is valid but almost
/// never met by chance (4,000 of 4,096 characters from a one-letter rule) fails in a fraction
/// of a second instead of keeping a worker busy for minutes.
const MAX_WORK: usize = 4_000_000;

/// One `rule "charset"` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharsetRule {
    pub charset: Vec<char>,
    pub min_chars: usize,
}

/// A parsed password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub length: usize,
    pub rules: Vec<CharsetRule>,
    /// The union of the rules' charsets, each character once, in first-seen order.
    alphabet: Vec<char>,
    /// Each rule's charset sorted, for binary search when a candidate is checked.
    sorted: Vec<Vec<char>>,
}

fn dedup(chars: impl IntoIterator<Item = char>) -> Vec<char> {
    let mut seen = std::collections::HashSet::new();
    chars.into_iter().filter(|c| seen.insert(*c)).collect()
}

fn number(e: &hcl::Expression, what: &str) -> Result<usize, String> {
    match e {
        hcl::Expression::Number(n) => n
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("{what} must be a non-negative integer")),
        hcl::Expression::String(s) => s
            .trim()
            .parse()
            .map_err(|_| format!("{what} must be a non-negative integer")),
        _ => Err(format!("{what} must be a non-negative integer")),
    }
}

impl PasswordPolicy {
    /// Builds a policy from its parts, checking that it can be satisfied.
    pub fn new(length: usize, rules: Vec<CharsetRule>) -> Result<Self, String> {
        if length < 4 {
            return Err("length must be at least 4".into());
        }
        if length > MAX_LENGTH {
            return Err(format!("length must be at most {MAX_LENGTH}"));
        }
        if rules.is_empty() {
            return Err("the policy needs at least one charset rule".into());
        }
        let mut min_total = 0usize;
        for r in &rules {
            if r.charset.is_empty() {
                return Err("a charset rule has an empty charset".into());
            }
            min_total = min_total.saturating_add(r.min_chars);
        }
        if min_total > length {
            return Err(format!(
                "the rules' min-chars add up to {min_total}, more than the length {length}"
            ));
        }
        let alphabet = dedup(rules.iter().flat_map(|r| r.charset.iter().copied()));
        let sorted = rules
            .iter()
            .map(|r| {
                let mut v = r.charset.clone();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        Ok(PasswordPolicy {
            length,
            rules,
            alphabet,
            sorted,
        })
    }

    /// Parses Vault's HCL form.
    pub fn parse(text: &str) -> Result<Self, String> {
        // The HCL parser backtracks exponentially through some deeply nested invalid text
        // (docs/fuzzing.md): refuse it before parsing, as policies and configs do.
        if let Some(at) = tresor_policy::hcl1::too_deep(text) {
            let (line, column) = tresor_policy::hcl1::line_column(text, at);
            return Err(format!(
                "unable to parse policy: nested more than {} levels deep at line {line}, column {column}",
                tresor_policy::hcl1::MAX_PARSE_NESTING
            ));
        }
        let body: hcl::Body =
            hcl::from_str(text).map_err(|e| format!("unable to parse policy: {e}"))?;
        let mut length = None;
        for a in body.attributes() {
            match a.key() {
                "length" => length = Some(number(a.expr(), "length")?),
                other => return Err(format!("unknown policy field {other:?}")),
            }
        }
        let mut rules = Vec::new();
        for b in body.blocks() {
            if b.identifier() != "rule" {
                return Err(format!("unknown policy block {:?}", b.identifier()));
            }
            let kind = b.labels().first().map(|l| l.as_str()).unwrap_or_default();
            if kind != "charset" {
                return Err(format!(
                    "unknown rule type {kind:?}: only \"charset\" exists"
                ));
            }
            let mut charset = None;
            let mut min_chars = 0;
            for a in b.body().attributes() {
                match a.key() {
                    "charset" => match a.expr() {
                        hcl::Expression::String(s) => charset = Some(dedup(s.chars())),
                        _ => return Err("charset must be a string".into()),
                    },
                    "min-chars" | "min_chars" => min_chars = number(a.expr(), "min-chars")?,
                    other => return Err(format!("unknown charset rule field {other:?}")),
                }
            }
            let charset = charset.ok_or("a charset rule needs a charset")?;
            rules.push(CharsetRule { charset, min_chars });
        }
        let length = length.ok_or("the policy needs a length")?;
        Self::new(length, rules)
    }

    /// The policy used when none is named: 20 characters of letters and digits, with at least
    /// one lowercase letter, one uppercase letter, one digit and one `-` (safe inside quoted
    /// SQL literals and connection URLs).
    pub fn default_policy() -> Self {
        let rule = |s: &str| CharsetRule {
            charset: s.chars().collect(),
            min_chars: 1,
        };
        Self::new(
            20,
            vec![
                rule("abcdefghijklmnopqrstuvwxyz"),
                rule("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                rule("0123456789"),
                rule("-"),
            ],
        )
        .expect("the default policy is valid")
    }

    fn satisfied(&self, candidate: &[char]) -> bool {
        self.rules.iter().zip(&self.sorted).all(|(r, sorted)| {
            r.min_chars == 0
                || candidate
                    .iter()
                    .filter(|c| sorted.binary_search(c).is_ok())
                    .count()
                    >= r.min_chars
        })
    }

    /// A fresh password.
    pub fn generate(&self) -> Result<Zeroizing<String>, String> {
        let rng = SystemRandom::new();
        let mut candidate = Zeroizing::new(Vec::with_capacity(self.length));
        let work = self.length.saturating_mul(1 + self.rules.len()).max(1);
        let attempts = (MAX_WORK / work).clamp(1, MAX_ATTEMPTS);
        for _ in 0..attempts {
            candidate.clear();
            for _ in 0..self.length {
                candidate.push(self.alphabet[uniform(&rng, self.alphabet.len())?]);
            }
            if self.satisfied(&candidate) {
                return Ok(Zeroizing::new(candidate.iter().collect()));
            }
        }
        Err("unable to generate a password that satisfies the policy".into())
    }
}

/// An unbiased index below `n` (`n` at least 1).
pub fn uniform(rng: &SystemRandom, n: usize) -> Result<usize, String> {
    debug_assert!(n > 0);
    if n == 1 {
        return Ok(0);
    }
    // Draws of 4 bytes; values at or above the largest multiple of n are rejected.
    let n32 = u32::try_from(n).map_err(|_| "charset too large".to_string())?;
    let limit = u32::MAX - (u32::MAX % n32);
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b)
            .map_err(|_| "the system random source failed".to_string())?;
        let v = u32::from_le_bytes(b);
        if v < limit {
            return Ok((v % n32) as usize);
        }
    }
}

/// `n` characters drawn uniformly from `charset` (the username template's `random`).
pub fn random_string(charset: &[char], n: usize) -> Result<String, String> {
    let rng = SystemRandom::new();
    (0..n)
        .map(|_| uniform(&rng, charset.len()).map(|i| charset[i]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOUR_AND_FOUR: &str = r#"
length = 20
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
}
rule "charset" {
  charset = "0123456789"
  min-chars = 4
}
rule "charset" {
  charset = "!@#$%^&*"
  min-chars = 4
}
"#;

    /// Issue 16: 4 digits and 4 symbols in 20 characters, over 1,000 generations, with every
    /// allowed character appearing.
    #[test]
    fn four_digits_four_symbols_over_a_thousand_generations() {
        let p = PasswordPolicy::parse(FOUR_AND_FOUR).unwrap();
        assert_eq!(p.length, 20);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..1000 {
            let pw = p.generate().unwrap();
            let chars: Vec<char> = pw.chars().collect();
            assert_eq!(chars.len(), 20);
            assert!(
                chars.iter().filter(|c| c.is_ascii_digit()).count() >= 4,
                "{}",
                *pw
            );
            assert!(
                chars.iter().filter(|c| "!@#$%^&*".contains(**c)).count() >= 4,
                "{}",
                *pw
            );
            assert!(
                chars
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || "!@#$%^&*".contains(*c))
            );
            seen.extend(chars);
        }
        assert_eq!(
            seen.len(),
            26 + 26 + 10 + 8,
            "every allowed character appears"
        );
    }

    #[test]
    fn the_default_policy_has_each_class() {
        let p = PasswordPolicy::default_policy();
        for _ in 0..200 {
            let pw = p.generate().unwrap();
            assert_eq!(pw.len(), 20);
            assert!(pw.chars().any(|c| c.is_ascii_lowercase()));
            assert!(pw.chars().any(|c| c.is_ascii_uppercase()));
            assert!(pw.chars().any(|c| c.is_ascii_digit()));
            assert!(pw.contains('-'));
        }
    }

    /// Found while writing the `database` fuzz target (issue 12): a valid policy that is almost
    /// never met by chance made `generate` draw 100,000 candidates of 4,096 characters (about
    /// 300 times this test's bounded run: minutes of CPU per request in a debug build); now the
    /// work is bounded and it fails within about a second.
    #[test]
    fn a_policy_almost_never_met_fails_fast() {
        let p = PasswordPolicy::parse(
            "length = 4096\nrule \"charset\" {\n  charset = \"a\"\n  min-chars = 4000\n}\nrule \"charset\" {\n  charset = \"bcdefghijklmnopqrstuvwxyz\"\n  min-chars = 1\n}\n",
        )
        .unwrap();
        let start = std::time::Instant::now();
        assert!(p.generate().is_err());
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
        // A long policy that is easy to meet still generates.
        let easy = PasswordPolicy::parse(
            "length = 4096\nrule \"charset\" {\n  charset = \"abcdefghijklmnopqrstuvwxyz\"\n  min-chars = 1\n}\nrule \"charset\" {\n  charset = \"0123456789\"\n  min-chars = 100\n}\n",
        )
        .unwrap();
        assert_eq!(easy.generate().unwrap().chars().count(), 4096);
    }

    /// The HCL parser once took minutes on 1 KiB of unclosed brackets (docs/fuzzing.md); a
    /// policy nested deeper than Vault's ever are is refused before it is parsed.
    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let text = format!("length = 20\nx = {}\n", "[{".repeat(300));
        let start = std::time::Instant::now();
        let e = PasswordPolicy::parse(&text).unwrap_err();
        assert!(e.contains("nested more than"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    /// A charset of 200,000 distinct characters parses and generates in well under a second
    /// of work (deduplicating and checking characters was quadratic in its size).
    #[test]
    fn a_huge_charset_is_not_quadratic() {
        let charset: String = (0x4E00u32..0x4E00 + 200_000)
            .filter_map(char::from_u32)
            .collect();
        let text = format!(
            "length = 64\nrule \"charset\" {{\n  charset = \"{charset}\"\n  min-chars = 64\n}}\n"
        );
        let start = std::time::Instant::now();
        let p = PasswordPolicy::parse(&text).unwrap();
        assert_eq!(p.generate().unwrap().chars().count(), 64);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "took {:?}",
            start.elapsed()
        );
    }

    /// Each character of a charset comes up about equally often (no modulo bias).
    #[test]
    fn draws_are_uniform() {
        let rng = SystemRandom::new();
        let mut counts = [0u32; 7];
        for _ in 0..70_000 {
            counts[uniform(&rng, 7).unwrap()] += 1;
        }
        for c in counts {
            assert!((9_300..10_700).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn bad_policies_are_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("", "needs a length"),
            ("length = 20", "at least one charset rule"),
            (
                "length = 2\nrule \"charset\" { charset = \"ab\" }",
                "at least 4",
            ),
            (
                "length = 5\nrule \"charset\" {\n charset = \"ab\"\n min-chars = 6\n}",
                "more than the length",
            ),
            (
                "length = 8\nrule \"other\" { charset = \"ab\" }",
                "unknown rule type",
            ),
            (
                "length = 8\nrule \"charset\" { min-chars = 1 }",
                "needs a charset",
            ),
            (
                "length = 8\nrule \"charset\" { charset = \"\" }",
                "empty charset",
            ),
            ("length = 8\ncolour = 1", "unknown policy field"),
            ("length = {", "unable to parse"),
        ];
        for (text, want) in cases {
            let e = PasswordPolicy::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
