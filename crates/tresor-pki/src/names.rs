//! Which names a role may put into a certificate: Vault's `allowed_domains` family of rules
//! (bare domains, subdomains, globs, wildcards, localhost, any name, hostname syntax), email
//! names checked by their domain, and the glob matcher shared by URI and other-name rules.
//!
//! This is the security boundary of the engine: a role for `example.com` must never issue for
//! `evil.com`, `evilexample.com` or `example.com.evil.com`. Every rule is checked on the whole
//! name, case-insensitively, and only the leftmost label of a name may hold a wildcard.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name {0:?} is not a valid hostname")]
    NotHostname(String),
    #[error("wildcard certificates are not allowed by this role: {0:?}")]
    WildcardNotAllowed(String),
    #[error("invalid wildcard name {0:?}")]
    BadWildcard(String),
    #[error("name {0:?} is not allowed by this role")]
    NotAllowed(String),
}

/// The role settings that decide which DNS and email names are allowed.
#[derive(Debug, Clone, Default)]
pub struct DomainPolicy<'a> {
    pub allowed_domains: &'a [String],
    pub allow_bare_domains: bool,
    pub allow_subdomains: bool,
    pub allow_glob_domains: bool,
    pub allow_wildcard_certificates: bool,
    pub allow_localhost: bool,
    pub allow_any_name: bool,
    pub enforce_hostnames: bool,
    pub allow_token_displayname: bool,
    pub display_name: &'a str,
}

/// RFC 1123 host name syntax (labels of letters, digits and inner hyphens; an optional
/// trailing dot), as Vault's `enforce_hostnames` checks it.
pub fn valid_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    name.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

/// Shell-style glob where `*` matches any run of characters (dots included), as Vault's glob
/// library does; everything else matches itself, case-insensitively.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = s.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn ends_with_label(name: &str, domain: &str) -> bool {
    name.len() > domain.len() + 1
        && name.ends_with(domain)
        && name.as_bytes()[name.len() - domain.len() - 1] == b'.'
}

impl DomainPolicy<'_> {
    /// Checks one DNS name or email address against the policy.
    pub fn check(&self, name: &str) -> Result<(), NameError> {
        let lower = name.trim().to_ascii_lowercase();
        if lower.is_empty() {
            return Err(NameError::NotAllowed(name.to_owned()));
        }
        // An email address is judged by its domain part.
        let (is_email, host) = match lower.rsplit_once('@') {
            Some((local, domain)) => {
                if local.is_empty() || domain.is_empty() {
                    return Err(NameError::NotAllowed(name.to_owned()));
                }
                (true, domain.to_owned())
            }
            None => (false, lower.clone()),
        };
        // A wildcard may only be the leftmost label (`*.x` or `ab*.x`), once.
        let mut is_wildcard = false;
        let mut reduced = host.clone();
        if host.contains('*') {
            if is_email {
                return Err(NameError::BadWildcard(name.to_owned()));
            }
            let Some((first, rest)) = host.split_once('.') else {
                return Err(NameError::BadWildcard(name.to_owned()));
            };
            if first.matches('*').count() != 1 || rest.contains('*') || rest.is_empty() {
                return Err(NameError::BadWildcard(name.to_owned()));
            }
            if !self.allow_wildcard_certificates {
                return Err(NameError::WildcardNotAllowed(name.to_owned()));
            }
            let label_ok = first
                .bytes()
                .all(|c| c == b'*' || c.is_ascii_alphanumeric() || c == b'-');
            if self.enforce_hostnames && !label_ok {
                return Err(NameError::NotHostname(name.to_owned()));
            }
            is_wildcard = true;
            reduced = rest.to_owned();
        }
        if self.enforce_hostnames && !valid_hostname(&reduced) {
            return Err(NameError::NotHostname(name.to_owned()));
        }
        if self.allow_any_name {
            return Ok(());
        }
        if self.allow_localhost && !is_wildcard {
            if reduced == "localhost" || reduced == "localdomain" {
                return Ok(());
            }
            if self.allow_subdomains
                && (ends_with_label(&reduced, "localhost")
                    || ends_with_label(&reduced, "localdomain"))
            {
                return Ok(());
            }
        }
        if self.allow_token_displayname
            && !self.display_name.is_empty()
            && lower == self.display_name.to_ascii_lowercase()
        {
            return Ok(());
        }
        for allowed in self.allowed_domains {
            let domain = allowed.trim().to_ascii_lowercase();
            if domain.is_empty() {
                continue;
            }
            let domain_has_glob = domain.contains('*');
            if !domain_has_glob {
                if self.allow_bare_domains && !is_wildcard {
                    // `allowed_domains` may itself name an email address.
                    if (is_email && lower == domain) || reduced == domain {
                        return Ok(());
                    }
                }
                if self.allow_subdomains {
                    if ends_with_label(&reduced, &domain) {
                        return Ok(());
                    }
                    // `*.example.com` is the wildcard of a subdomain of `example.com`.
                    if is_wildcard && reduced == domain {
                        return Ok(());
                    }
                }
            } else if self.allow_glob_domains && glob_match(&domain, &lower) {
                return Ok(());
            }
        }
        Err(NameError::NotAllowed(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy<'a>(domains: &'a [String]) -> DomainPolicy<'a> {
        DomainPolicy {
            allowed_domains: domains,
            allow_wildcard_certificates: true,
            enforce_hostnames: true,
            ..Default::default()
        }
    }

    #[test]
    fn a_role_for_example_com_never_issues_for_other_domains() {
        let d = vec!["example.com".to_string()];
        let mut p = policy(&d);
        p.allow_subdomains = true;
        p.allow_bare_domains = true;
        let cases: &[(&str, bool)] = &[
            ("example.com", true),
            ("EXAMPLE.com", true),
            ("www.example.com", true),
            ("a.b.example.com", true),
            ("*.example.com", true),
            ("*.www.example.com", true),
            ("user@example.com", true),
            ("user@mail.example.com", true),
            ("evil.com", false),
            ("evilexample.com", false),
            ("example.com.evil.com", false),
            ("www.example.com.evil.com", false),
            ("example.co", false),
            ("xample.com", false),
            (".example.com", false),
            ("*.com", false),
            ("*", false),
            ("user@evil.com", false),
            ("example.com@evil.com", false),
            ("ex*ample.com", false),
            ("*.*.example.com", false),
            ("www.*.example.com", false),
            ("localhost", false),
            ("", false),
        ];
        for (name, ok) in cases {
            assert_eq!(p.check(name).is_ok(), *ok, "{name}");
        }
    }

    #[test]
    fn each_flag_gates_its_own_rule() {
        let d = vec!["example.com".to_string()];
        // Neither bare nor subdomains: nothing matches.
        let p = policy(&d);
        for n in ["example.com", "www.example.com"] {
            assert!(p.check(n).is_err(), "{n}");
        }
        // Bare only.
        let mut p = policy(&d);
        p.allow_bare_domains = true;
        assert!(p.check("example.com").is_ok());
        assert!(p.check("www.example.com").is_err());
        assert!(p.check("*.example.com").is_err());
        // Subdomains only.
        let mut p = policy(&d);
        p.allow_subdomains = true;
        assert!(p.check("example.com").is_err());
        assert!(p.check("www.example.com").is_ok());
        // Wildcards switched off.
        p.allow_wildcard_certificates = false;
        assert_eq!(
            p.check("*.example.com"),
            Err(NameError::WildcardNotAllowed("*.example.com".into()))
        );
        // Localhost.
        let mut p = policy(&d);
        p.allow_localhost = true;
        assert!(p.check("localhost").is_ok());
        assert!(p.check("foo.localhost").is_err());
        p.allow_subdomains = true;
        assert!(p.check("foo.localhost").is_ok());
        // Any name, but hostnames still enforced.
        let mut p = policy(&[]);
        p.allow_any_name = true;
        assert!(p.check("anything.test").is_ok());
        assert_eq!(
            p.check("bad_name!.test"),
            Err(NameError::NotHostname("bad_name!.test".into()))
        );
        p.enforce_hostnames = false;
        assert!(p.check("bad_name!.test").is_ok());
    }

    #[test]
    fn globs_apply_only_when_enabled() {
        let d = vec![
            "*.svc.example.com".to_string(),
            "db-*.example.com".to_string(),
        ];
        let mut p = policy(&d);
        assert!(p.check("a.svc.example.com").is_err());
        p.allow_glob_domains = true;
        assert!(p.check("a.svc.example.com").is_ok());
        assert!(p.check("db-1.example.com").is_ok());
        assert!(p.check("web-1.example.com").is_err());
        assert!(p.check("a.svc.example.com.evil.com").is_err());
    }

    #[test]
    fn glob_matcher_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "anything", true),
            ("a*c", "abc", true),
            ("a*c", "ac", true),
            ("a*c", "abd", false),
            ("spiffe://example/*", "spiffe://example/a/b", true),
            ("spiffe://example/*", "spiffe://other/a", false),
            ("*.example.com", "x.example.com", true),
            ("*.example.com", "example.com", false),
            ("**", "", true),
            ("", "x", false),
        ];
        for (p, s, want) in cases {
            assert_eq!(glob_match(p, s), *want, "{p} {s}");
        }
    }

    #[test]
    fn hostnames_table() {
        for ok in ["a", "a.b", "a-b.c", "xn--bcher-kva.example", "a.b."] {
            assert!(valid_hostname(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", "é.com", "."] {
            assert!(!valid_hostname(bad), "{bad}");
        }
    }
}
