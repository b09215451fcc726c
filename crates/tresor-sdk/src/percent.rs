//! Percent-decoding (`%2F` → `/`), shared by the HTTP layer (paths and query strings) and
//! engines that parse URLs of their own (a PostgreSQL connection URL's query).

/// The bytes `s` spells: `%XY` with two hex digits is one byte, anything else is itself
/// (`+` is a space when `plus_is_space`, as in a query string or a form). Never fails: a `%`
/// not followed by two hex digits stays as it is.
pub fn decode(s: &str, plus_is_space: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) << 4 | hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn decodes_and_leaves_the_rest() {
        assert_eq!(decode("%2Fetc%2fca.pem", false), b"/etc/ca.pem");
        assert_eq!(decode("a+b%20c", true), b"a b c");
        assert_eq!(decode("a+b", false), b"a+b");
        // Malformed or truncated escapes stay as they are; multibyte text is never split.
        assert_eq!(decode("%", true), b"%");
        assert_eq!(decode("%2", true), b"%2");
        assert_eq!(decode("%zz", true), b"%zz");
        assert_eq!(decode("%a\u{e9}", true), "%a\u{e9}".as_bytes());
        assert_eq!(decode("\u{e9}%41", true), "\u{e9}A".as_bytes());
    }
}
