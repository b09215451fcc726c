//! The HCL 1 forms Vault accepts and HCL 2 (the `hcl-rs` parser) refuses, rewritten into HCL 2.
//!
//! Vault parses server configs and ACL policies with HCL 1, which takes several items on one
//! line where HCL 2 wants a line break or a comma:
//!
//! * a block with several attributes, or a nested block, on one line:
//!   `listener "tcp" { address = "127.0.0.1:8200" tls_disable = true }`;
//! * a block whose closing brace shares a line with its last item, or whose first item shares
//!   the opening brace's line;
//! * object items separated by spaces only: `allowed_parameters = { "a" = [] "ttl" = ["5m"] }`;
//! * two blocks on one line: `path "a" { } path "b" { }`.
//!
//! [`normalize`] inserts exactly the missing bytes — a newline between block items and inside
//! a block's braces, a comma between object items — and nothing else, so the meaning cannot
//! change, and it records each inserted byte so that positions in the rewritten text map back
//! to the text the author wrote ([`Normalized::original_offset`], [`Normalized::is_inserted`]).
//! Past anything it does not understand (a `for` expression, a malformed string) it rewrites
//! nothing, leaving that to the real parser to read or report. Callers parse the original text first and only
//! fall back to the rewrite when that fails, so valid HCL 2 is never touched.

/// Text rewritten into HCL 2, with the offsets of the bytes that were inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The rewritten text.
    pub text: String,
    /// Offsets in `text` of the inserted bytes, ascending.
    inserted: Vec<usize>,
}

impl Normalized {
    /// Whether anything was inserted.
    pub fn changed(&self) -> bool {
        !self.inserted.is_empty()
    }

    /// Whether the byte at `at` in the rewritten text was inserted (not written by the author).
    pub fn is_inserted(&self, at: usize) -> bool {
        self.inserted.binary_search(&at).is_ok()
    }

    /// The offset in the original text of the byte at `at` in the rewritten text (an inserted
    /// byte maps to the original byte after it).
    pub fn original_offset(&self, at: usize) -> usize {
        at - self.inserted.partition_point(|&i| i < at)
    }
}

/// The 1-based line and column (in characters) of byte offset `at` in `text`.
pub fn line_column(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The deepest nesting of brackets (`{`, `[`, `(`), strings, heredocs and template
/// interpolations that text may have before it reaches the HCL parser. The parser backtracks
/// through nested constructs, and on some invalid input its time grows exponentially with their
/// depth: fuzzing found a 1 KiB policy of unclosed braces that took minutes (issue 12), and
/// with 16 levels allowed still a 341-byte text at exactly 16 levels that took seconds. Vault's
/// policies and server configs nest three or four levels deep (`path { allowed_parameters =
/// { k = [] } }`, `auto_auth { method { config = { } } }`).
pub const MAX_PARSE_NESTING: usize = 8;

/// The byte offset at which `text` nests deeper than [`MAX_PARSE_NESTING`], if it does. Strings (with
/// escapes), `${`/`%{` interpolations, heredocs and comments are followed as HCL's lexer
/// reads them, so a bracket inside a string neither counts nor hides one outside.
pub fn too_deep(text: &str) -> Option<usize> {
    #[derive(Clone, Copy, PartialEq)]
    enum Frame {
        Bracket,
        Interp,
        Str,
        Heredoc { id_at: usize, id_len: usize },
    }
    let b = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        let at_line_start = line_start;
        line_start = c == b'\n';
        match stack.last().copied() {
            Some(Frame::Str) | Some(Frame::Heredoc { .. }) => {
                if let Some(Frame::Heredoc { id_at, id_len }) = stack.last().copied()
                    && at_line_start
                {
                    let end = text[i..].find('\n').map_or(b.len(), |n| i + n);
                    if text[i..end].trim() == &text[id_at..id_at + id_len] {
                        stack.pop();
                        i = end;
                        continue;
                    }
                }
                match (c, next) {
                    (b'\\', _) if stack.last() == Some(&Frame::Str) => i += 1,
                    (b'"', _) if stack.last() == Some(&Frame::Str) => {
                        stack.pop();
                    }
                    (b'$' | b'%', Some(n)) if n == c => i += 1, // `$${` and `%%{` are literal
                    (b'$' | b'%', Some(b'{')) => {
                        stack.push(Frame::Interp);
                        i += 1;
                    }
                    _ => {}
                }
            }
            Some(Frame::Bracket) | Some(Frame::Interp) | None => match (c, next) {
                (b'#', _) | (b'/', Some(b'/')) => {
                    i = text[i..].find('\n').map_or(b.len(), |n| i + n);
                    continue;
                }
                (b'/', Some(b'*')) => {
                    i = text[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                    continue;
                }
                (b'"', _) => stack.push(Frame::Str),
                (b'<', Some(b'<')) => {
                    let mut j = i + 2;
                    if b.get(j) == Some(&b'-') {
                        j += 1;
                    }
                    let id_len = b[j..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
                        .count();
                    if id_len > 0 && matches!(b.get(j + id_len), Some(b'\n') | Some(b'\r')) {
                        stack.push(Frame::Heredoc { id_at: j, id_len });
                        i = j + id_len;
                        continue;
                    }
                    i += 1;
                }
                (b'{' | b'[' | b'(', _) => stack.push(Frame::Bracket),
                (b'}' | b']' | b')', _) => {
                    stack.pop();
                }
                _ => {}
            },
        }
        if stack.len() > MAX_PARSE_NESTING {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Rewrites the HCL 1 forms listed in the module documentation into HCL 2.
pub fn normalize(text: &str) -> Normalized {
    let unchanged = || Normalized {
        text: text.to_owned(),
        inserted: Vec::new(),
    };
    let Some(tokens) = lex(text.as_bytes()) else {
        return unchanged();
    };
    let mut p = Parser {
        toks: &tokens,
        i: 0,
        depth: 0,
        ins: Vec::new(),
    };
    // Where the text stops making sense to this module, the rewrites before that point are
    // kept: the parser then reports the real error (or parses what this module cannot read).
    let _ = p.body(true);
    if p.ins.is_empty() {
        return unchanged();
    }
    let mut ins = p.ins;
    ins.sort_by_key(|(at, _)| *at);
    let mut out = String::with_capacity(text.len() + ins.len());
    let mut inserted = Vec::with_capacity(ins.len());
    let mut from = 0;
    for (at, byte) in ins {
        out.push_str(&text[from..at]);
        inserted.push(out.len());
        out.push(byte as char);
        from = at;
    }
    out.push_str(&text[from..]);
    Normalized {
        text: out,
        inserted,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Newline,
    Word,
    Str,
    Heredoc,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Eq,
    Colon,
    Comma,
    Question,
    Op,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Tok,
    start: usize,
    end: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') || b >= 0x80
}

/// Splits HCL text into tokens; comments vanish (a multi-line block comment counts as a line
/// break). `None` for text this module does not understand.
fn lex(s: &[u8]) -> Option<Vec<Token>> {
    let mut toks = Vec::new();
    let mut i = 0;
    let push = |toks: &mut Vec<Token>, kind, start, end| toks.push(Token { kind, start, end });
    while i < s.len() {
        let b = s[i];
        let start = i;
        match b {
            b' ' | b'\t' | b'\r' => i += 1,
            b'\n' => {
                push(&mut toks, Tok::Newline, i, i + 1);
                i += 1;
            }
            b'#' => i = line_end(s, i),
            b'/' if s.get(i + 1) == Some(&b'/') => i = line_end(s, i),
            b'/' if s.get(i + 1) == Some(&b'*') => {
                let close = find(s, i + 2, b"*/")?;
                if s[i..close].contains(&b'\n') {
                    push(&mut toks, Tok::Newline, i, i);
                }
                i = close + 2;
            }
            b'"' => {
                i = string_end(s, i + 1, 0)?;
                push(&mut toks, Tok::Str, start, i);
            }
            b'<' if s.get(i + 1) == Some(&b'<') => {
                i = heredoc_end(s, i + 2)?;
                push(&mut toks, Tok::Heredoc, start, i);
            }
            b'{' | b'}' | b'[' | b']' | b'(' | b')' | b',' | b':' => {
                let kind = match b {
                    b'{' => Tok::LBrace,
                    b'}' => Tok::RBrace,
                    b'[' => Tok::LBracket,
                    b']' => Tok::RBracket,
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b',' => Tok::Comma,
                    _ => Tok::Colon,
                };
                i += 1;
                push(&mut toks, kind, start, i);
            }
            b'=' => {
                if matches!(s.get(i + 1), Some(b'=' | b'>')) {
                    i += 2;
                    push(&mut toks, Tok::Op, start, i);
                } else {
                    i += 1;
                    push(&mut toks, Tok::Eq, start, i);
                }
            }
            b'?' => {
                i += 1;
                push(&mut toks, Tok::Question, start, i);
            }
            _ if is_word_byte(b) => {
                while i < s.len() && is_word_byte(s[i]) {
                    i += 1;
                }
                push(&mut toks, Tok::Word, start, i);
            }
            _ => {
                i += 1;
                push(&mut toks, Tok::Op, start, i);
            }
        }
    }
    Some(toks)
}

fn line_end(s: &[u8], from: usize) -> usize {
    s[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(s.len(), |p| from + p)
}

fn find(s: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    s.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// The offset after the closing quote of a string whose body starts at `i`. Templates
/// (`${...}`, `%{...}`) may hold strings of their own; a string does not span lines.
fn string_end(s: &[u8], mut i: usize, nest: usize) -> Option<usize> {
    if nest > MAX_NESTING {
        return None;
    }
    while i < s.len() {
        match s[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            b'\n' => return None,
            b'$' | b'%' if s.get(i + 1) == Some(&s[i]) && s.get(i + 2) == Some(&b'{') => i += 3,
            b'$' | b'%' if s.get(i + 1) == Some(&b'{') => i = template_end(s, i + 2, nest + 1)?,
            _ => i += 1,
        }
    }
    None
}

/// The offset after the `}` closing a template interpolation whose body starts at `i`.
fn template_end(s: &[u8], mut i: usize, nest: usize) -> Option<usize> {
    let mut depth = 1usize;
    while i < s.len() {
        match s[i] {
            b'"' => {
                i = string_end(s, i + 1, nest)?;
                continue;
            }
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The offset of the end of a heredoc's closing marker line (`<<EOF` / `<<-EOF`, marker
/// starting at `i`).
fn heredoc_end(s: &[u8], mut i: usize) -> Option<usize> {
    if s.get(i) == Some(&b'-') {
        i += 1;
    }
    let name_start = i;
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    let name = &s[name_start..i];
    if name.is_empty() {
        return None;
    }
    // The rest of the opening line must be blank.
    let mut line = line_end(s, i);
    if !s[i..line].iter().all(|b| b.is_ascii_whitespace()) {
        return None;
    }
    while line < s.len() {
        let next = line + 1;
        let end = line_end(s, next);
        if s[next..end].trim_ascii() == name {
            return Some(end);
        }
        line = end;
    }
    None
}

/// How deep this module follows nesting (blocks, brackets, braces, parentheses, unary
/// operators, templates in strings) before it gives up and leaves the text to the HCL parser,
/// which refuses more than 64 levels anyway. Its recursion must stay bounded whatever the
/// input (issue 12: a policy of 10,000 nested `[` overflowed a worker's stack and aborted the
/// server).
const MAX_NESTING: usize = 128;

struct Parser<'a> {
    toks: &'a [Token],
    i: usize,
    /// How many blocks and operands enclose the current token.
    depth: usize,
    /// (offset in the original text, byte to insert before it).
    ins: Vec<(usize, u8)>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<Tok> {
        self.toks.get(self.i).map(|t| t.kind)
    }

    fn peek_at(&self, n: usize) -> Option<Tok> {
        self.toks.get(self.i + n).map(|t| t.kind)
    }

    fn next(&mut self) -> Option<Token> {
        let t = *self.toks.get(self.i)?;
        self.i += 1;
        Some(t)
    }

    fn expect(&mut self, kind: Tok) -> Option<Token> {
        (self.peek() == Some(kind)).then(|| self.next())?
    }

    fn skip_newlines(&mut self) {
        while self.peek() == Some(Tok::Newline) {
            self.i += 1;
        }
    }

    /// The end of the token before the current one.
    fn prev_end(&self) -> usize {
        self.toks[self.i - 1].end
    }

    /// Whether the tokens from the current one start a body item: an attribute (`key =`) or a
    /// block (`ident "label"... {`).
    fn at_body_item(&self) -> bool {
        if !matches!(self.peek(), Some(Tok::Word | Tok::Str)) {
            return false;
        }
        let mut n = 1;
        if self.peek_at(1) == Some(Tok::Eq) {
            return true;
        }
        while matches!(self.peek_at(n), Some(Tok::Word | Tok::Str)) {
            n += 1;
        }
        self.peek_at(n) == Some(Tok::LBrace)
    }

    /// Whether the tokens from the current one start an object item (`key =` or `key:`).
    fn at_object_item(&self) -> bool {
        matches!(self.peek(), Some(Tok::Word | Tok::Str))
            && matches!(self.peek_at(1), Some(Tok::Eq | Tok::Colon))
    }

    /// A body: the file (`top`) or a block's, up to (not including) its `}`. Returns how many
    /// items it had and whether one was a block.
    fn body(&mut self, top: bool) -> Option<(usize, bool)> {
        let (mut items, mut had_block) = (0, false);
        loop {
            self.skip_newlines();
            match self.peek() {
                None if top => return Some((items, had_block)),
                Some(Tok::RBrace) if !top => return Some((items, had_block)),
                Some(Tok::Word | Tok::Str) => {}
                _ => return None,
            }
            self.next();
            items += 1;
            if self.peek() == Some(Tok::Eq) {
                self.next();
                self.value()?;
            } else {
                while matches!(self.peek(), Some(Tok::Word | Tok::Str)) {
                    self.next();
                }
                self.expect(Tok::LBrace)?;
                self.block()?;
                had_block = true;
            }
            // What may follow an item on its line: a line break, the end, the enclosing
            // block's `}` (which `block` moves to a line of its own), or another item, which
            // HCL 2 wants on the next line.
            match self.peek() {
                None | Some(Tok::Newline) => {}
                Some(Tok::RBrace) if !top => {}
                _ if self.at_body_item() => self.ins.push((self.prev_end(), b'\n')),
                _ => return None,
            }
        }
    }

    /// A block after its `{`, through its `}`. A body that is not HCL 2's one-line form (one
    /// attribute, braces on its line) gets its braces on lines of their own.
    fn block(&mut self) -> Option<()> {
        self.nested(Self::block_body)
    }

    /// Runs `step` one level deeper, or fails past [`MAX_NESTING`].
    fn nested(&mut self, step: fn(&mut Self) -> Option<()>) -> Option<()> {
        if self.depth >= MAX_NESTING {
            return None;
        }
        self.depth += 1;
        let r = step(self);
        self.depth -= 1;
        r
    }

    fn block_body(&mut self) -> Option<()> {
        let open = self.i - 1;
        if self.peek() == Some(Tok::RBrace) {
            self.next();
            return Some(());
        }
        let inserted_before = self.ins.len();
        let (items, had_block) = self.body(false)?;
        let close = self.i;
        self.expect(Tok::RBrace)?;
        let starts_inline = self.toks[open + 1].kind != Tok::Newline;
        let ends_inline = self.toks[close - 1].kind != Tok::Newline;
        let one_line_form = items == 1
            && !had_block
            && self.ins.len() == inserted_before
            && self.toks[open + 1..close]
                .iter()
                .all(|t| t.kind != Tok::Newline);
        if !one_line_form {
            if starts_inline {
                self.ins.push((self.toks[open].end, b'\n'));
            }
            if ends_inline {
                self.ins.push((self.toks[close].start, b'\n'));
            }
        }
        Some(())
    }

    /// An expression: operands joined by operators (a conditional's `?` and `:` included).
    fn value(&mut self) -> Option<()> {
        let mut conditional = false;
        self.operand()?;
        loop {
            match self.peek() {
                Some(Tok::Op) => {}
                Some(Tok::Question) => conditional = true,
                Some(Tok::Colon) if conditional => conditional = false,
                _ => return Some(()),
            }
            self.next();
            self.skip_newlines();
            self.operand()?;
        }
    }

    /// One operand: a literal, a name (or function call), a list, an object, a parenthesised
    /// expression, or a unary operator applied to one of those; then any `[index]`.
    fn operand(&mut self) -> Option<()> {
        self.nested(Self::operand_body)
    }

    fn operand_body(&mut self) -> Option<()> {
        match self.next()?.kind {
            Tok::Str | Tok::Heredoc => {}
            Tok::Word => {
                if self.peek() == Some(Tok::LParen) {
                    self.next();
                    self.list(Tok::RParen)?;
                }
            }
            Tok::Op => return self.operand(),
            Tok::LBracket => self.list(Tok::RBracket)?,
            Tok::LBrace => self.object()?,
            Tok::LParen => self.list(Tok::RParen)?,
            _ => return None,
        }
        while self.peek() == Some(Tok::LBracket) {
            self.next();
            self.list(Tok::RBracket)?;
        }
        Some(())
    }

    /// Comma-separated values through `close` (lists, call arguments, parentheses).
    fn list(&mut self, close: Tok) -> Option<()> {
        loop {
            self.skip_newlines();
            if self.peek() == Some(close) {
                self.next();
                return Some(());
            }
            self.value()?;
            self.skip_newlines();
            match self.peek() {
                Some(Tok::Comma) => {
                    self.next();
                }
                Some(k) if k == close => {}
                _ => return None,
            }
        }
    }

    /// An object after its `{`, through its `}`; items on one line get the comma HCL 2 needs.
    fn object(&mut self) -> Option<()> {
        loop {
            self.skip_newlines();
            match self.peek()? {
                Tok::RBrace => {
                    self.next();
                    return Some(());
                }
                Tok::Word | Tok::Str => {
                    self.next();
                }
                Tok::LParen => {
                    self.next();
                    self.list(Tok::RParen)?;
                }
                _ => return None,
            }
            match self.peek() {
                Some(Tok::Eq | Tok::Colon) => {
                    self.next();
                }
                _ => return None,
            }
            self.value()?;
            match self.peek() {
                Some(Tok::Comma) => {
                    self.next();
                }
                Some(Tok::Newline | Tok::RBrace) => {}
                _ if self.at_object_item() => self.ins.push((self.prev_end(), b',')),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rewrite, which must parse as HCL 2 (and the original must not).
    fn norm(text: &str) -> String {
        assert!(
            hcl::edit::parser::parse_body(text).is_err(),
            "{text:?} is HCL 2 already"
        );
        let out = normalize(text).text;
        if let Err(e) = hcl::edit::parser::parse_body(&out) {
            panic!("{text:?} became {out:?}, which does not parse: {e}");
        }
        out
    }

    #[test]
    fn one_line_blocks_get_a_line_per_item() {
        assert_eq!(
            norm(r#"listener "tcp" { address = "127.0.0.1:8200" tls_disable = true }"#),
            "listener \"tcp\" {\n address = \"127.0.0.1:8200\"\n tls_disable = true \n}"
        );
        // Two blocks on a line, and a nested one-line block.
        assert_eq!(
            norm("a { } b \"x\" { c { d = 1 } }"),
            "a { }\n b \"x\" {\n c { d = 1 } \n}"
        );
        // The closing brace on the last item's line.
        assert_eq!(norm("a {\n  b = 1\n  c = 2 }"), "a {\n  b = 1\n  c = 2 \n}");
    }

    #[test]
    fn object_items_on_one_line_get_commas() {
        assert_eq!(
            norm(r#"p "a" { allowed_parameters = { "common_name" = [] "ttl" = ["5m"] } }"#),
            "p \"a\" {\n allowed_parameters = { \"common_name\" = [], \"ttl\" = [\"5m\"] } \n}"
        );
        assert_eq!(
            norm("x = { a = 1 b: \"2\" c = [3, 4] }"),
            "x = { a = 1, b: \"2\", c = [3, 4] }"
        );
    }

    #[test]
    fn valid_hcl2_and_unknown_forms_are_left_alone() {
        for text in [
            "a {\n  b = 1\n}\n",
            "x = { a = 1, b = 2 }\n",
            "a \"x\" { b = 1 }\n",
            "x = \"${var.a} { not a brace\"\n",
            "x = <<EOT\n{ a = 1 b = 2 }\nEOT\n",
            "x = [for s in y : upper(s)]\n",
            "x = \"unterminated\n",
            "# only a comment { a = 1 b = 2 }\n",
        ] {
            let n = normalize(text);
            assert!(!n.changed(), "{text:?} became {:?}", n.text);
            assert_eq!(n.text, text);
        }
    }

    #[test]
    fn offsets_map_back_to_the_original() {
        let text = "a { b = 1 c = 2 }\nd = 3";
        let n = normalize(text);
        assert_eq!(n.text, "a {\n b = 1\n c = 2 \n}\nd = 3");
        for (i, ch) in n.text.char_indices() {
            if n.is_inserted(i) {
                continue;
            }
            assert_eq!(
                text.as_bytes()[n.original_offset(i)] as char,
                ch,
                "offset {i}"
            );
        }
        let d = n.text.find('d').unwrap();
        assert_eq!(line_column(text, n.original_offset(d)), (2, 1));
    }

    /// Issue 12: the nesting handed to the HCL parser is bounded, counted as HCL's lexer reads
    /// the text (a bracket in a string, heredoc or comment is text, not nesting).
    #[test]
    fn too_deep_counts_nesting_as_the_lexer_reads_it() {
        let max = MAX_PARSE_NESTING;
        let at = |depth: usize| format!("x = {}1{}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(too_deep(&at(max)), None);
        assert_eq!(too_deep(&at(max + 1)), Some(4 + max));
        for fine in [
            "path \"secret/{{identity.entity.id}}/*\" { capabilities = [\"read\"] }",
            "x = \"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\"",
            "x = \"\\\"{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\"",
            "x = \"$${{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\"",
            "# {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\nx = 1",
            "// ((((((((((((((((((((((((((((((((((((((\nx = 1",
            "/* [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ */ x = 1",
            "x = <<EOT\n{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\nEOT\ny = 2",
            "x = <<-EOT\n  \"\n  EOT\ny = {}",
            "x = \"${a[\"}\"]}\" y = {}",
        ] {
            assert_eq!(too_deep(fine), None, "{fine:?}");
        }
        for deep in [
            // A string holding a closer does not close anything.
            format!("x = {}", "{\"}\" = ".repeat(max + 1)),
            // Interpolations nest like brackets.
            format!("x = {}", "\"${".repeat(max)),
            // A quote inside a heredoc does not start a string that would hide what follows.
            format!("x = <<E\n\"\nE\ny = {}", "{".repeat(max + 1)),
            // Unclosed brackets, as the fuzzer wrote them.
            format!("p = {}", "a/{{x.y = z/".repeat(max)),
        ] {
            assert!(too_deep(&deep).is_some(), "{deep:?}");
        }
    }

    /// Issue 12: nesting of any depth is refused, not followed until the stack overflows (the
    /// test thread's stack is no bigger than a server worker's).
    #[test]
    fn deep_nesting_gives_up_instead_of_overflowing_the_stack() {
        let n = 100_000;
        for text in [
            format!("a {{ x = {}{} }}", "[".repeat(n), "]".repeat(n)),
            format!("a {{ x = {}1{} }}", "(".repeat(n), ")".repeat(n)),
            format!("a {{ x = {}1{} }}", "{a=".repeat(n), "}".repeat(n)),
            format!("a {{ x = {}1 }}", "-".repeat(n)),
            format!("{}{}", "a {\n".repeat(n), "}\n".repeat(n)),
            format!("x = {}{}", "\"${".repeat(n), "}\"".repeat(n)),
        ] {
            let out = normalize(&text);
            assert!(!out.changed(), "{:?}...", &text[..40]);
        }
        // Shallow nesting is still rewritten.
        let shallow = format!("a {{ x = {}1{} y = 2 }}", "[".repeat(50), "]".repeat(50));
        assert!(normalize(&shallow).changed());
    }
}
