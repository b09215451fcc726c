//! Templates: the `{{name}}`-style placeholders of SQL statements and connection URLs, and the
//! small Go-template language of `username_template`.
//!
//! Username templates are the subset of Go's `text/template` that Vault's username templates
//! use: actions of pipelines (`a | b | c`, the value passed as the last argument), calls with
//! string and integer literals, parenthesized pipelines, the fields `.DisplayName` and
//! `.RoleName`, and the functions `printf` (`%s`, `%d`, `%v`, `%%`), `random N`,
//! `truncate N`, `truncate_sha256 N`, `uppercase`, `lowercase`, `replace OLD NEW`, `sha256`,
//! `base64`, `uuid`, `unix_time`, `unix_time_millis` and `timestamp LAYOUT` (Go layouts).

use crate::password::random_string;

/// Replaces `{{key}}` (spaces inside the braces allowed) with its value; other text, including
/// unknown placeholders, is left as it is.
pub fn render_placeholders(text: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        match values.iter().find(|(k, _)| *k == key) {
            Some((_, v)) => out.push_str(v),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// What a username template can see.
pub struct UsernameInput<'a> {
    pub display_name: &'a str,
    pub role_name: &'a str,
    /// Unix time in milliseconds.
    pub now_millis: i64,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Int(i64),
    Field(String),
    Ident(String),
    Open,
    Close,
    Pipe,
}

fn lex(action: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = action.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '"' | '`' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&c) = chars.get(i) else {
                        return Err("unterminated string in username_template".into());
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c == '\\' && quote == '"' {
                        let Some(&n) = chars.get(i) else {
                            return Err("unterminated string in username_template".into());
                        };
                        i += 1;
                        s.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    } else {
                        s.push(c);
                    }
                }
                out.push(Tok::Str(s));
            }
            '.' => {
                let start = i + 1;
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Field(chars[start..i].iter().collect()));
            }
            c if c.is_ascii_digit() || c == '-' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Tok::Int(
                    s.parse()
                        .map_err(|_| format!("bad number {s:?} in username_template"))?,
                ));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(format!("unexpected {other:?} in username_template")),
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Val {
    Str(String),
    Int(i64),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Int(i) => i.to_string(),
        }
    }
    fn int(&self, f: &str) -> Result<i64, String> {
        match self {
            Val::Int(i) => Ok(*i),
            Val::Str(s) => s
                .parse()
                .map_err(|_| format!("{f}: expected an integer, got {s:?}")),
        }
    }
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    input: &'a UsernameInput<'a>,
}

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn pipeline(&mut self) -> Result<Val, String> {
        let mut v = self.command(None)?;
        while self.peek() == Some(&Tok::Pipe) {
            self.pos += 1;
            v = self.command(Some(v))?;
        }
        Ok(v)
    }

    /// One command: a function call with its arguments, or a single operand.
    fn command(&mut self, piped: Option<Val>) -> Result<Val, String> {
        match self.peek().cloned() {
            Some(Tok::Ident(name)) => {
                self.pos += 1;
                let mut args = Vec::new();
                while let Some(t) = self.peek() {
                    if matches!(t, Tok::Pipe | Tok::Close) {
                        break;
                    }
                    args.push(self.operand()?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                self.call(&name, args)
            }
            Some(_) => {
                let v = self.operand()?;
                if piped.is_some() {
                    return Err("a value cannot take piped input in username_template".into());
                }
                Ok(v)
            }
            None => Err("empty action in username_template".into()),
        }
    }

    fn operand(&mut self) -> Result<Val, String> {
        let t = self
            .peek()
            .cloned()
            .ok_or("unexpected end of username_template action")?;
        self.pos += 1;
        match t {
            Tok::Str(s) => Ok(Val::Str(s)),
            Tok::Int(i) => Ok(Val::Int(i)),
            Tok::Field(f) => match f.as_str() {
                "DisplayName" => Ok(Val::Str(self.input.display_name.to_owned())),
                "RoleName" => Ok(Val::Str(self.input.role_name.to_owned())),
                other => Err(format!("unknown field .{other} in username_template")),
            },
            // A bare function name as an argument is a call without arguments.
            Tok::Ident(name) => self.call(&name, Vec::new()),
            Tok::Open => {
                let v = self.pipeline()?;
                if self.peek() != Some(&Tok::Close) {
                    return Err("missing ) in username_template".into());
                }
                self.pos += 1;
                Ok(v)
            }
            Tok::Close | Tok::Pipe => Err("unexpected symbol in username_template".into()),
        }
    }

    fn call(&self, name: &str, args: Vec<Val>) -> Result<Val, String> {
        let want = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{name} takes {n} argument(s), got {} in username_template",
                    args.len()
                ))
            }
        };
        let s = |i: usize| args[i].text();
        Ok(match name {
            "printf" => {
                let Some((fmt, rest)) = args.split_first() else {
                    return Err("printf needs a format in username_template".into());
                };
                Val::Str(printf(&fmt.text(), rest)?)
            }
            "random" => {
                want(1)?;
                let n = args[0].int(name)?.clamp(0, 1024) as usize;
                let chars: Vec<char> = ALNUM.chars().collect();
                Val::Str(random_string(&chars, n)?)
            }
            "truncate" => {
                want(2)?;
                let n = args[0].int(name)?.max(0) as usize;
                Val::Str(s(1).chars().take(n).collect())
            }
            "truncate_sha256" => {
                want(2)?;
                let n = args[0].int(name)?.max(0) as usize;
                let v = s(1);
                if v.chars().count() <= n {
                    Val::Str(v)
                } else {
                    let head: String = v.chars().take(n.saturating_sub(8)).collect();
                    let digest = hex(&sha256(v.as_bytes()));
                    Val::Str(format!("{head}{}", &digest[..8.min(n)]))
                }
            }
            "uppercase" => {
                want(1)?;
                Val::Str(s(0).to_uppercase())
            }
            "lowercase" => {
                want(1)?;
                Val::Str(s(0).to_lowercase())
            }
            "replace" => {
                want(3)?;
                Val::Str(s(2).replace(&s(0), &s(1)))
            }
            "sha256" => {
                want(1)?;
                Val::Str(hex(&sha256(s(0).as_bytes())))
            }
            "base64" => {
                want(1)?;
                Val::Str(base64(s(0).as_bytes()))
            }
            "uuid" => {
                want(0)?;
                let mut b = [0u8; 16];
                aws_lc_rs::rand::fill(&mut b).map_err(|_| "random source failed".to_string())?;
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let h = hex(&b);
                Val::Str(format!(
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                ))
            }
            "unix_time" => {
                want(0)?;
                Val::Int(self.input.now_millis.div_euclid(1000))
            }
            "unix_time_millis" => {
                want(0)?;
                Val::Int(self.input.now_millis)
            }
            "timestamp" => {
                want(1)?;
                Val::Str(go_time_format(
                    &s(0),
                    self.input.now_millis.div_euclid(1000),
                ))
            }
            other => return Err(format!("unknown function {other:?} in username_template")),
        })
    }
}

fn printf(fmt: &str, args: &[Val]) -> Result<String, String> {
    let mut out = String::new();
    let mut it = fmt.chars();
    let mut next = args.iter();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('%') => out.push('%'),
            Some('s' | 'd' | 'v') => match next.next() {
                Some(v) => out.push_str(&v.text()),
                None => out.push_str("%!(MISSING)"),
            },
            other => {
                return Err(format!(
                    "printf verb %{} is not supported in username_template",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

fn sha256(b: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, x)| acc | (u32::from(*x) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Formats Unix seconds (UTC) with a Go time layout: the reference date's parts
/// (`2006 01 02 15 04 05`, also `Jan`, `Mon`, `MST`, `Z07:00`, `-0700`) are replaced.
pub fn go_time_format(layout: &str, unix: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let parts: &[(&str, String)] = &[
        ("2006", format!("{:04}", t.year())),
        ("Z07:00", "Z".into()),
        ("-07:00", "+00:00".into()),
        ("-0700", "+0000".into()),
        ("MST", "UTC".into()),
        ("January", t.month().to_string()),
        ("Jan", t.month().to_string().chars().take(3).collect()),
        ("Monday", t.weekday().to_string()),
        ("Mon", t.weekday().to_string().chars().take(3).collect()),
        ("01", format!("{:02}", u8::from(t.month()))),
        ("02", format!("{:02}", t.day())),
        ("15", format!("{:02}", t.hour())),
        ("04", format!("{:02}", t.minute())),
        ("05", format!("{:02}", t.second())),
        ("06", format!("{:02}", t.year() % 100)),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        for (k, v) in parts {
            if let Some(r) = rest.strip_prefix(k) {
                out.push_str(v);
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Checks a username template without rendering it for real (at config time).
pub fn check_username_template(template: &str) -> Result<(), String> {
    render_username(
        template,
        &UsernameInput {
            display_name: "token",
            role_name: "role",
            now_millis: 0,
        },
    )
    .map(|_| ())
}

/// Renders a username template.
pub fn render_username(template: &str, input: &UsernameInput<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or("unclosed action in username_template")?;
        let action = after[..end]
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let mut p = Parser {
            toks: lex(action)?,
            pos: 0,
            input,
        };
        let v = p.pipeline()?;
        if p.pos != p.toks.len() {
            return Err("unexpected text after a pipeline in username_template".into());
        }
        out.push_str(&v.text());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> UsernameInput<'static> {
        UsernameInput {
            display_name: "userpass-alice",
            role_name: "readonly-role",
            now_millis: 1_700_000_000_123,
        }
    }

    #[test]
    fn placeholders() {
        let out = render_placeholders(
            "CREATE ROLE \"{{name}}\" PASSWORD '{{ password }}' VALID UNTIL '{{expiration}}' {{other}}",
            &[("name", "v-x"), ("password", "pw"), ("expiration", "2030")],
        );
        assert_eq!(
            out,
            "CREATE ROLE \"v-x\" PASSWORD 'pw' VALID UNTIL '2030' {{other}}"
        );
        assert_eq!(render_placeholders("a {{b", &[("b", "x")]), "a {{b");
    }

    #[test]
    fn username_templates() {
        let cases: &[(&str, &str)] = &[
            ("{{.RoleName}}", "readonly-role"),
            ("{{ .DisplayName | truncate 8 }}", "userpass"),
            (
                "{{ .RoleName | uppercase | replace \"-\" \"_\" }}",
                "READONLY_ROLE",
            ),
            ("x-{{unix_time}}", "x-1700000000"),
            ("{{unix_time_millis}}", "1700000000123"),
            (
                "{{ printf \"v-%s-%s\" (.DisplayName | truncate 4) (.RoleName) }}",
                "v-user-readonly-role",
            ),
            (
                "{{ timestamp \"2006-01-02T15:04:05Z07:00\" }}",
                "2023-11-14T22:13:20Z",
            ),
            ("{{ \"abc\" | base64 }}", "YWJj"),
            ("{{ \"ab\" | base64 }}", "YWI="),
            ("{{ printf \"%d%%\" 5 }}", "5%"),
        ];
        for (t, want) in cases {
            assert_eq!(render_username(t, &input()).unwrap(), *want, "{t}");
        }
        let r = render_username(
            "{{ printf \"v-%s-%s-%s-%s\" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}",
            &input(),
        )
        .unwrap();
        assert!(r.starts_with("v-userpass-readonly-"), "{r}");
        assert_eq!(r.len(), "v-userpass-readonly-".len() + 20 + 1 + 10);
        let u = render_username("{{uuid}}", &input()).unwrap();
        assert_eq!(u.len(), 36);
        let t = render_username("{{ .RoleName | truncate_sha256 10 }}", &input()).unwrap();
        assert_eq!(t.len(), 10);
    }

    #[test]
    fn bad_username_templates_say_why() {
        for (t, want) in [
            ("{{ .Nope }}", "unknown field"),
            ("{{ nope 1 }}", "unknown function"),
            ("{{ truncate 1 }}", "takes 2 argument"),
            ("{{ .RoleName", "unclosed"),
            ("{{ (.RoleName }}", "missing )"),
            ("{{ \"abc }}", "unterminated"),
        ] {
            let e = render_username(t, &input()).unwrap_err();
            assert!(e.contains(want), "{t}: {e}");
        }
    }
}
