//! A template engine for the part of consul-template's language that agent templates use:
//! Go `text/template` actions (`{{ pipeline }}`, `if`/`else if`/`else`, `with`/`else`,
//! `range` with `$k, $v :=`, `$x :=` variables, `-` trim markers, comments) over JSON values,
//! and the functions people use: `secret`, `pkiCert`, `base64Decode`, `base64Encode`,
//! `toJSON`, `toJSONPretty`, `env`, `file`, `index`, `printf`, `trimSpace`, `toUpper`,
//! `toLower`, `contains`, `split`, `join`, `len`, `eq`, `ne`, `not`, `and`, `or`.
//!
//! Values print as Go prints them (`map[a:1]`, `[x y]`, `<no value>` for a missing key).
//! Secrets and certificates come from a [`Source`], so the engine itself does no I/O
//! besides `file` and `env`. Templates are parsed once at start, so a syntax error stops the
//! agent before it runs.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};

/// Where `secret` and `pkiCert` get their data.
pub trait Source {
    /// `secret PATH [k=v ...]`: a read, or a write when arguments are given.
    fn secret(&mut self, path: &str, args: &[String]) -> Result<Value, String>;
    /// `pkiCert PATH [k=v ...]`.
    fn pki_cert(&mut self, path: &str, args: &[String]) -> Result<Value, String>;
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Out(Pipe),
    Assign(String, Pipe),
    If(Vec<(Pipe, Vec<Node>)>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Range {
        key: Option<String>,
        val: Option<String>,
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipe(Vec<Vec<Arg>>);

#[derive(Debug, Clone)]
enum Arg {
    /// `.` or `.A.B`.
    Dot(Vec<String>),
    /// `$x` or `$x.A`.
    Var(String, Vec<String>),
    Lit(Value),
    Func(String),
    /// `( pipeline ).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Num(serde_json::Number),
    Ident(String),
    Field(Vec<String>),
    Var(String, Vec<String>),
    Open,
    Close(Vec<String>),
    Bar,
    Declare,
    Comma,
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let fields = |cs: &[char], i: &mut usize| -> Vec<String> {
        let mut v = Vec::new();
        while *i < cs.len() && cs[*i] == '.' {
            *i += 1;
            let s = *i;
            while *i < cs.len() && (cs[*i].is_alphanumeric() || cs[*i] == '_') {
                *i += 1;
            }
            if *i > s {
                v.push(cs[s..*i].iter().collect());
            }
        }
        v
    };
    while i < cs.len() {
        let c = cs[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match cs.get(i) {
                        None => return Err("unterminated quoted string".into()),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            match cs.get(i) {
                                Some('n') => s.push('\n'),
                                Some('t') => s.push('\t'),
                                Some('r') => s.push('\r'),
                                Some(c) => s.push(*c),
                                None => return Err("unterminated quoted string".into()),
                            }
                        }
                        Some(c) => s.push(*c),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            '`' => {
                let s0 = i + 1;
                i = s0;
                while i < cs.len() && cs[i] != '`' {
                    i += 1;
                }
                if i >= cs.len() {
                    return Err("unterminated raw string".into());
                }
                out.push(Tok::Str(cs[s0..i].iter().collect()));
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                i += 1;
                out.push(Tok::Close(fields(&cs, &mut i)));
            }
            '|' => {
                out.push(Tok::Bar);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if cs.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Declare);
                i += 1;
            }
            '.' => {
                if cs.get(i + 1).is_some_and(|c| c.is_ascii_digit()) {
                    return Err("numbers must start with a digit".into());
                }
                out.push(Tok::Field(fields(&cs, &mut i)));
            }
            '$' => {
                let s = i;
                i += 1;
                while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                    i += 1;
                }
                let name: String = cs[s..i].iter().collect();
                out.push(Tok::Var(name, fields(&cs, &mut i)));
            }
            c if c.is_ascii_digit()
                || (c == '-' && cs.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let s = i;
                i += 1;
                while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '.') {
                    i += 1;
                }
                let text: String = cs[s..i].iter().collect();
                let n: Value = serde_json::from_str(&text)
                    .map_err(|_| format!("bad number syntax: {text:?}"))?;
                match n {
                    Value::Number(n) => out.push(Tok::Num(n)),
                    _ => return Err(format!("bad number syntax: {text:?}")),
                }
            }
            c if c.is_alphabetic() || c == '_' => {
                let s = i;
                while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(cs[s..i].iter().collect()));
            }
            other => return Err(format!("unexpected {other:?} in action")),
        }
    }
    Ok(out)
}

struct PipeParser {
    toks: Vec<Tok>,
    pos: usize,
}

impl PipeParser {
    fn pipe(&mut self, nested: bool) -> Result<Pipe, String> {
        let mut cmds = Vec::new();
        let mut cur = Vec::new();
        loop {
            let Some(t) = self.toks.get(self.pos).cloned() else {
                if nested {
                    return Err("unclosed left paren".into());
                }
                break;
            };
            self.pos += 1;
            match t {
                Tok::Close(_) if nested => {
                    self.pos -= 1;
                    break;
                }
                Tok::Close(_) => return Err("unexpected right paren".into()),
                Tok::Bar => {
                    if cur.is_empty() {
                        return Err("missing command before |".into());
                    }
                    cmds.push(std::mem::take(&mut cur));
                }
                Tok::Open => {
                    let inner = self.pipe(true)?;
                    let Some(Tok::Close(f)) = self.toks.get(self.pos).cloned() else {
                        return Err("unclosed left paren".into());
                    };
                    self.pos += 1;
                    cur.push(Arg::Sub(Box::new(inner), f));
                }
                Tok::Str(s) => cur.push(Arg::Lit(Value::String(s))),
                Tok::Num(n) => cur.push(Arg::Lit(Value::Number(n))),
                Tok::Ident(id) => cur.push(match id.as_str() {
                    "true" => Arg::Lit(Value::Bool(true)),
                    "false" => Arg::Lit(Value::Bool(false)),
                    "nil" => Arg::Lit(Value::Null),
                    _ => Arg::Func(id),
                }),
                Tok::Field(f) => cur.push(Arg::Dot(f)),
                Tok::Var(v, f) => cur.push(Arg::Var(v, f)),
                Tok::Declare | Tok::Comma => return Err("unexpected := or , in pipeline".into()),
            }
        }
        if !cur.is_empty() {
            cmds.push(cur);
        }
        if cmds.is_empty() {
            return Err("missing value for command".into());
        }
        Ok(Pipe(cmds))
    }
}

fn parse_pipe(toks: Vec<Tok>) -> Result<Pipe, String> {
    let mut p = PipeParser { toks, pos: 0 };
    let pipe = p.pipe(false)?;
    if p.pos != p.toks.len() {
        return Err("unexpected tokens after pipeline".into());
    }
    Ok(pipe)
}

/// One `{{ }}` after lexing: what kind of action it is.
enum Action {
    Text(String),
    Out(Pipe),
    Assign(String, Pipe),
    If(Pipe),
    ElseIf(Pipe),
    ElseWith(Pipe),
    Else,
    End,
    With(Pipe),
    Range(Option<String>, Option<String>, Pipe),
}

fn action(src: &str) -> Result<Option<Action>, String> {
    let t = src.trim();
    if t.starts_with("/*") {
        if !t.ends_with("*/") {
            return Err("unclosed comment".into());
        }
        return Ok(None);
    }
    let toks = lex(t)?;
    let first = toks.first().cloned();
    let rest = || toks[1..].to_vec();
    Ok(Some(match first {
        None => return Err("missing value for command".into()),
        Some(Tok::Ident(k)) if k == "end" && toks.len() == 1 => Action::End,
        Some(Tok::Ident(k)) if k == "else" => match toks.get(1) {
            None => Action::Else,
            Some(Tok::Ident(k2)) if k2 == "if" => Action::ElseIf(parse_pipe(toks[2..].to_vec())?),
            Some(Tok::Ident(k2)) if k2 == "with" => {
                Action::ElseWith(parse_pipe(toks[2..].to_vec())?)
            }
            _ => return Err("unexpected tokens after else".into()),
        },
        Some(Tok::Ident(k)) if k == "if" => Action::If(parse_pipe(rest())?),
        Some(Tok::Ident(k)) if k == "with" => Action::With(parse_pipe(rest())?),
        Some(Tok::Ident(k)) if k == "range" => {
            let r = rest();
            match r.as_slice() {
                [
                    Tok::Var(k, f1),
                    Tok::Comma,
                    Tok::Var(v, f2),
                    Tok::Declare,
                    ..,
                ] if f1.is_empty() && f2.is_empty() => Action::Range(
                    Some(k.clone()),
                    Some(v.clone()),
                    parse_pipe(r[4..].to_vec())?,
                ),
                [Tok::Var(v, f), Tok::Declare, ..] if f.is_empty() => {
                    Action::Range(None, Some(v.clone()), parse_pipe(r[2..].to_vec())?)
                }
                _ => Action::Range(None, None, parse_pipe(r)?),
            }
        }
        Some(Tok::Ident(k)) if k == "define" || k == "template" || k == "block" => {
            return Err(format!("{k} is not supported"));
        }
        Some(Tok::Var(v, f)) if f.is_empty() && toks.get(1) == Some(&Tok::Declare) => {
            Action::Assign(v, parse_pipe(toks[2..].to_vec())?)
        }
        _ => Action::Out(parse_pipe(toks)?),
    }))
}

/// Splits into text and actions, applying the `{{-` and `-}}` trim markers.
fn scan(src: &str, left: &str, right: &str) -> Result<Vec<(usize, Action)>, String> {
    let mut out: Vec<(usize, Action)> = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next = false;
    while !rest.is_empty() {
        let (text, after) = match rest.find(left) {
            Some(p) => (&rest[..p], Some(&rest[p + left.len()..])),
            None => (rest, None),
        };
        let mut text = text.to_string();
        if trim_next {
            text = text.trim_start().to_string();
        }
        let Some(after) = after else {
            if !text.is_empty() {
                out.push((line, Action::Text(text)));
            }
            break;
        };
        let (trim_left, body_start) = match after.strip_prefix("- ") {
            Some(_) => (true, &after[1..]),
            None => (false, after),
        };
        if trim_left {
            text = text.trim_end().to_string();
        }
        if !text.is_empty() {
            line += text.matches('\n').count();
            out.push((line, Action::Text(text)));
        }
        let end = body_start
            .find(right)
            .ok_or_else(|| format!("line {line}: unclosed action"))?;
        let mut body = &body_start[..end];
        trim_next = false;
        if body.ends_with(" -") {
            body = &body[..body.len() - 2];
            trim_next = true;
        }
        line += body.matches('\n').count();
        if let Some(a) = action(body).map_err(|e| format!("line {line}: {e}"))? {
            out.push((line, a));
        }
        rest = &body_start[end + right.len()..];
    }
    Ok(out)
}

enum Stop {
    End,
    Else,
    ElseIf(Pipe),
    ElseWith(Pipe),
}

fn build(
    items: &mut std::iter::Peekable<std::vec::IntoIter<(usize, Action)>>,
    top: bool,
) -> Result<(Vec<Node>, Option<Stop>), String> {
    let mut nodes = Vec::new();
    while let Some((line, a)) = items.next() {
        let err = |m: &str| format!("line {line}: {m}");
        match a {
            Action::Text(t) => nodes.push(Node::Text(t)),
            Action::Out(p) => nodes.push(Node::Out(p)),
            Action::Assign(v, p) => nodes.push(Node::Assign(v, p)),
            Action::End if top => return Err(err("unexpected {{end}}")),
            Action::End => return Ok((nodes, Some(Stop::End))),
            Action::Else if top => return Err(err("unexpected {{else}}")),
            Action::Else => return Ok((nodes, Some(Stop::Else))),
            Action::ElseIf(p) => return Ok((nodes, Some(Stop::ElseIf(p)))),
            Action::ElseWith(p) => return Ok((nodes, Some(Stop::ElseWith(p)))),
            Action::If(p) => {
                let mut branches = Vec::new();
                let mut cond = p;
                let otherwise = loop {
                    let (body, stop) = build(items, false)?;
                    branches.push((cond, body));
                    match stop {
                        Some(Stop::End) => break Vec::new(),
                        Some(Stop::Else) => {
                            let (body, stop) = build(items, false)?;
                            if !matches!(stop, Some(Stop::End)) {
                                return Err(err("expected {{end}} after {{else}}"));
                            }
                            break body;
                        }
                        Some(Stop::ElseIf(p)) => cond = p,
                        _ => return Err(err("unclosed {{if}}")),
                    }
                };
                nodes.push(Node::If(branches, otherwise));
            }
            Action::With(p) => {
                let (body, stop) = build(items, false)?;
                let otherwise = match stop {
                    Some(Stop::End) => Vec::new(),
                    Some(Stop::Else) => {
                        let (b, s) = build(items, false)?;
                        if !matches!(s, Some(Stop::End)) {
                            return Err(err("expected {{end}} after {{else}}"));
                        }
                        b
                    }
                    Some(Stop::ElseWith(p2)) => {
                        // `else with` is a nested with in the else branch.
                        let (b, s) = build(items, false)?;
                        if !matches!(s, Some(Stop::End)) {
                            return Err(err("expected {{end}} after {{else with}}"));
                        }
                        vec![Node::With(p2, b, Vec::new())]
                    }
                    _ => return Err(err("unclosed {{with}}")),
                };
                nodes.push(Node::With(p, body, otherwise));
            }
            Action::Range(key, val, pipe) => {
                let (key, val) = match (key, val) {
                    (None, Some(v)) => (None, Some(v)),
                    kv => kv,
                };
                let (body, stop) = build(items, false)?;
                let otherwise = match stop {
                    Some(Stop::End) => Vec::new(),
                    Some(Stop::Else) => {
                        let (b, s) = build(items, false)?;
                        if !matches!(s, Some(Stop::End)) {
                            return Err(err("expected {{end}} after {{else}}"));
                        }
                        b
                    }
                    _ => return Err(err("unclosed {{range}}")),
                };
                nodes.push(Node::Range {
                    key,
                    val,
                    pipe,
                    body,
                    otherwise,
                });
            }
        }
    }
    if top {
        Ok((nodes, None))
    } else {
        Err("unexpected end of template: missing {{end}}".into())
    }
}

impl Template {
    /// Parses a template with the given delimiters.
    pub fn parse(src: &str, left: &str, right: &str) -> Result<Template, String> {
        let items = scan(src, left, right)?;
        let (nodes, _) = build(&mut items.into_iter().peekable(), true)?;
        Ok(Template { nodes })
    }

    /// Renders with `src` for secrets; `strict` makes a missing map key an error.
    pub fn render(&self, src: &mut dyn Source, strict: bool) -> Result<String, String> {
        let mut r = Renderer {
            src,
            strict,
            vars: vec![("$".to_string(), Value::Null)],
            out: String::new(),
            iterations: 0,
        };
        r.nodes(&self.nodes, &Value::Null)?;
        Ok(r.out)
    }
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A value's type for error messages (which never quote values: they may be secrets).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

/// Go's `%v` of a JSON value.
pub fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_print_inner).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(o) => {
            let sorted: BTreeMap<_, _> = o.iter().collect();
            format!(
                "map[{}]",
                sorted
                    .iter()
                    .map(|(k, v)| format!("{k}:{}", go_print_inner(v)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    }
}

fn go_print_inner(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        other => go_print(other),
    }
}

/// The most `range` iterations one render may run, over every range together: a template
/// such as `{{ range 388888888888888 }}` (found by fuzzing, issue 12) asked for an allocation
/// of petabytes, and nested ranges multiply.
const MAX_RANGE_ITERATIONS: u64 = 1_000_000;

struct Renderer<'a> {
    src: &'a mut dyn Source,
    strict: bool,
    vars: Vec<(String, Value)>,
    out: String,
    /// `range` iterations run so far (see [`MAX_RANGE_ITERATIONS`]).
    iterations: u64,
}

impl Renderer<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<(), String> {
        let mark = self.vars.len();
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Out(p) => {
                    let v = self.pipe(p, dot)?;
                    self.out.push_str(&go_print(&v));
                }
                Node::Assign(name, p) => {
                    let v = self.pipe(p, dot)?;
                    // A new variable for the rest of this block (a later one shadows it).
                    self.vars.push((name.clone(), v));
                }
                Node::If(branches, otherwise) => {
                    let mut done = false;
                    for (cond, body) in branches {
                        if truthy(&self.pipe(cond, dot)?) {
                            self.nodes(body, dot)?;
                            done = true;
                            break;
                        }
                    }
                    if !done {
                        self.nodes(otherwise, dot)?;
                    }
                }
                Node::With(p, body, otherwise) => {
                    let v = self.pipe(p, dot)?;
                    if truthy(&v) {
                        self.nodes(body, &v)?;
                    } else {
                        self.nodes(otherwise, dot)?;
                    }
                }
                Node::Range {
                    key,
                    val,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let v = self.pipe(pipe, dot)?;
                    let items: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, x)| (Value::from(i), x.clone()))
                            .collect(),
                        Value::Object(o) => {
                            let sorted: BTreeMap<_, _> = o.iter().collect();
                            sorted
                                .into_iter()
                                .map(|(k, x)| (Value::String(k.clone()), x.clone()))
                                .collect()
                        }
                        Value::Null => Vec::new(),
                        Value::Number(n) => {
                            let n = n.as_u64().unwrap_or(0);
                            if n > MAX_RANGE_ITERATIONS - self.iterations.min(MAX_RANGE_ITERATIONS)
                            {
                                return Err(format!(
                                    "range over {n}: more than {MAX_RANGE_ITERATIONS} iterations in one render"
                                ));
                            }
                            (0..n).map(|i| (Value::from(i), Value::from(i))).collect()
                        }
                        _ => return Err(format!("range can't iterate over a {}", type_name(&v))),
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, dot)?;
                    }
                    for (k, x) in items {
                        self.iterations += 1;
                        if self.iterations > MAX_RANGE_ITERATIONS {
                            return Err(format!(
                                "more than {MAX_RANGE_ITERATIONS} range iterations in one render"
                            ));
                        }
                        let m = self.vars.len();
                        match (key, val) {
                            (Some(kn), Some(vn)) => {
                                self.vars.push((kn.clone(), k));
                                self.vars.push((vn.clone(), x.clone()));
                            }
                            (None, Some(vn)) => self.vars.push((vn.clone(), x.clone())),
                            _ => {}
                        }
                        self.nodes(body, &x)?;
                        self.vars.truncate(m);
                    }
                }
            }
        }
        self.vars.truncate(mark);
        Ok(())
    }

    fn fields(&self, mut v: Value, fields: &[String]) -> Result<Value, String> {
        for f in fields {
            v = match v {
                Value::Object(mut o) => match o.remove(f) {
                    Some(x) => x,
                    None if self.strict => return Err(format!("map has no entry for key {f:?}")),
                    None => Value::Null,
                },
                Value::Null => {
                    return Err(format!("nil pointer evaluating interface {{}}.{f}"));
                }
                other => {
                    return Err(format!(
                        "can't evaluate field {f} in type {}",
                        type_name(&other)
                    ));
                }
            };
        }
        Ok(v)
    }

    fn arg(&mut self, a: &Arg, dot: &Value) -> Result<Value, String> {
        match a {
            Arg::Dot(f) => self.fields(dot.clone(), f),
            Arg::Var(name, f) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| format!("undefined variable {name}"))?;
                self.fields(v, f)
            }
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Func(name) => self.call(name, Vec::new()),
            Arg::Sub(p, f) => {
                let v = self.pipe(p, dot)?;
                self.fields(v, f)
            }
        }
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, String> {
        let mut prev: Option<Value> = None;
        for cmd in &p.0 {
            let v = match cmd.as_slice() {
                [Arg::Func(name), rest @ ..] => {
                    let mut args = rest
                        .iter()
                        .map(|a| self.arg(a, dot))
                        .collect::<Result<Vec<_>, _>>()?;
                    if let Some(pv) = prev.take() {
                        args.push(pv);
                    }
                    self.call(name, args)?
                }
                [single] if prev.is_none() => self.arg(single, dot)?,
                _ => return Err("only functions can take arguments or be piped into".into()),
            };
            prev = Some(v);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    fn call(&mut self, name: &str, args: Vec<Value>) -> Result<Value, String> {
        let s = |i: usize| -> Result<String, String> {
            match args.get(i) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(other) => Ok(go_print(other)),
                None => Err(format!("{name}: missing argument")),
            }
        };
        let want = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{name}: wrong number of args: want {n}, got {}",
                    args.len()
                ))
            }
        };
        Ok(match name {
            "secret" | "pkiCert" => {
                let path = s(0)?;
                let rest: Vec<String> = (1..args.len()).map(s).collect::<Result<_, _>>()?;
                if name == "secret" {
                    self.src.secret(&path, &rest)?
                } else {
                    self.src.pki_cert(&path, &rest)?
                }
            }
            "base64Decode" | "base64URLDecode" => {
                want(1)?;
                let engine = if name == "base64Decode" {
                    &base64::engine::general_purpose::STANDARD
                } else {
                    &base64::engine::general_purpose::URL_SAFE
                };
                let bytes = engine
                    .decode(s(0)?.trim())
                    .map_err(|e| format!("{name}: {e}"))?;
                Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }
            "base64Encode" => {
                want(1)?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(s(0)?))
            }
            "toJSON" => {
                want(1)?;
                Value::String(sorted_json(&args[0], false))
            }
            "toJSONPretty" => {
                want(1)?;
                Value::String(sorted_json(&args[0], true))
            }
            "env" => {
                want(1)?;
                Value::String(std::env::var(s(0)?).unwrap_or_default())
            }
            "file" => {
                want(1)?;
                let p = s(0)?;
                Value::String(std::fs::read_to_string(&p).map_err(|e| format!("file: {p}: {e}"))?)
            }
            "index" => {
                let mut v = args.first().cloned().unwrap_or(Value::Null);
                for k in &args[1.min(args.len())..] {
                    v = match (&v, k) {
                        (Value::Object(o), Value::String(k)) => {
                            o.get(k).cloned().unwrap_or(Value::Null)
                        }
                        (Value::Array(a), Value::Number(n)) => n
                            .as_u64()
                            .and_then(|i| a.get(i as usize).cloned())
                            .ok_or("index: out of range")?,
                        _ => return Err(format!("index: cannot index a {}", type_name(&v))),
                    };
                }
                v
            }
            "trimSpace" => Value::String(s(0)?.trim().to_string()),
            "toUpper" => Value::String(s(0)?.to_uppercase()),
            "toLower" => Value::String(s(0)?.to_lowercase()),
            "contains" => {
                want(2)?;
                // consul-template: contains SUBSTRING STRING (the piped value last).
                Value::Bool(s(1)?.contains(&s(0)?))
            }
            "split" => {
                want(2)?;
                let (sep, text) = (s(0)?, s(1)?);
                Value::Array(text.split(&sep).map(|x| Value::String(x.into())).collect())
            }
            "join" => {
                want(2)?;
                let sep = s(0)?;
                match &args[1] {
                    Value::Array(a) => {
                        Value::String(a.iter().map(go_print).collect::<Vec<_>>().join(&sep))
                    }
                    other => return Err(format!("join: not a list but a {}", type_name(other))),
                }
            }
            "len" => {
                want(1)?;
                Value::from(match &args[0] {
                    Value::String(s) => s.len(),
                    Value::Array(a) => a.len(),
                    Value::Object(o) => o.len(),
                    Value::Null => 0,
                    other => return Err(format!("len of a {}", type_name(other))),
                })
            }
            "eq" => Value::Bool(args.len() >= 2 && args[1..].iter().any(|x| *x == args[0])),
            "ne" => {
                want(2)?;
                Value::Bool(args[0] != args[1])
            }
            "not" => {
                want(1)?;
                Value::Bool(!truthy(&args[0]))
            }
            "and" => args
                .iter()
                .find(|v| !truthy(v))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "or" => args
                .iter()
                .find(|v| truthy(v))
                .or(args.last())
                .cloned()
                .unwrap_or(Value::Null),
            "printf" => Value::String(printf(&s(0)?, &args[1.min(args.len())..])?),
            other => return Err(format!("function {other:?} not defined")),
        })
    }
}

/// JSON with object keys sorted, as Go's encoder writes maps.
fn sorted_json(v: &Value, pretty: bool) -> String {
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(o) => {
                let sorted: BTreeMap<_, _> = o.iter().collect();
                let mut m = Map::new();
                for (k, x) in sorted {
                    m.insert(k.clone(), sort(x));
                }
                Value::Object(m)
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    let v = sort(v);
    if pretty {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    } else {
        serde_json::to_string(&v).unwrap_or_default()
    }
}

/// `printf` with `%s`, `%v`, `%d`, `%q` and `%%`.
fn printf(fmt: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut it = args.iter();
    let mut cs = fmt.chars();
    while let Some(c) = cs.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match cs.next() {
            Some('%') => out.push('%'),
            Some(v @ ('s' | 'v' | 'd' | 'q')) => {
                let a = it
                    .next()
                    .map(go_print)
                    .unwrap_or_else(|| "%!v(MISSING)".into());
                if v == 'q' {
                    out.push_str(&serde_json::to_string(&a).unwrap_or_default());
                } else {
                    out.push_str(&a);
                }
            }
            other => {
                return Err(format!(
                    "printf: unsupported verb %{}",
                    other.unwrap_or(' ')
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
