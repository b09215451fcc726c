//! Splitting the statements of a role into single SQL statements, and quoting.
//!
//! A role's `creation_statements` (and the other lists) hold one or more strings, each with
//! one or more statements separated by `;`. A `;` inside a quoted string, a quoted identifier,
//! a PostgreSQL dollar-quoted body (`DO $$ ... $$`) or a comment does not end a statement.

/// The single statements of every string of `lists`, trimmed, empty ones dropped.
pub fn split_all(lists: &[String]) -> Vec<String> {
    lists.iter().flat_map(|s| split(s)).collect()
}

/// The single statements of one string.
pub fn split(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            q @ (b'\'' | b'"' | b'`') => {
                i += 1;
                while i < b.len() {
                    if b[i] == b'\\' && q != b'"' {
                        // MySQL's backslash escapes (harmless for standard strings: a
                        // backslash there is followed by an ordinary character).
                        i += 2;
                        continue;
                    }
                    if b[i] == q {
                        // A doubled quote is an escaped quote.
                        if b.get(i + 1) == Some(&q) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'$' => {
                // A dollar quote: $$ or $tag$, where tag is letters, digits and _.
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                if j < b.len()
                    && b[j] == b'$'
                    && !b[i + 1..j].first().is_some_and(u8::is_ascii_digit)
                {
                    let tag = &text[i..=j];
                    match text[j + 1..].find(tag) {
                        Some(k) => i = j + 1 + k + tag.len(),
                        None => i = b.len(),
                    }
                } else {
                    i += 1;
                }
            }
            b';' => {
                push(&mut out, &text[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < text.len() {
        push(&mut out, &text[start..]);
    }
    out
}

fn push(out: &mut Vec<String>, stmt: &str) {
    let s = stmt.trim();
    if !s.is_empty() {
        out.push(s.to_owned());
    }
}

/// A PostgreSQL identifier in double quotes.
pub fn pg_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal in single quotes (standard quoting; MySQL also takes it, with
/// backslashes doubled).
pub fn literal(value: &str, mysql: bool) -> String {
    let v = value.replace('\'', "''");
    let v = if mysql { v.replace('\\', "\\\\") } else { v };
    format!("'{v}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        let cases: &[(&str, &[&str])] = &[
            ("a; b;", &["a", "b"]),
            ("  ;; a ;", &["a"]),
            (
                "CREATE ROLE \"x;y\" PASSWORD 'p;w'; GRANT",
                &["CREATE ROLE \"x;y\" PASSWORD 'p;w'", "GRANT"],
            ),
            ("SELECT 'it''s; fine'; x", &["SELECT 'it''s; fine'", "x"]),
            (
                "DO $$ BEGIN a; b; END $$; c",
                &["DO $$ BEGIN a; b; END $$", "c"],
            ),
            ("DO $f$ a; $f$; c", &["DO $f$ a; $f$", "c"]),
            ("a -- x; y\n; b", &["a -- x; y", "b"]),
            ("a /* ; */ b; c", &["a /* ; */ b", "c"]),
            ("SELECT $1; b", &["SELECT $1", "b"]),
            (
                "GRANT SELECT ON `db;x`.* TO 'u'@'%'",
                &["GRANT SELECT ON `db;x`.* TO 'u'@'%'"],
            ),
            ("SELECT 'a\\';b'; c", &["SELECT 'a\\';b'", "c"]),
        ];
        for (text, want) in cases {
            assert_eq!(split(text), *want, "{text}");
        }
        assert_eq!(split_all(&["a;b".into(), "c".into()]), vec!["a", "b", "c"]);
    }

    #[test]
    fn quoting() {
        assert_eq!(pg_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's", false), "'it''s'");
        assert_eq!(literal("a\\b'", true), "'a\\\\b'''");
    }
}
