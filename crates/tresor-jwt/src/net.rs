//! Outbound HTTP for the methods (OIDC discovery, JWKS, the token endpoint, TokenReview):
//! clients that trust a configured CA bundle (or the system's), bounded timeouts, no
//! redirects; and the small encoders the OAuth exchanges need.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long one outbound request may take, connect included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client trusting only the certificates in `ca_pem` when it is given (a server
/// certificate equal to one of them included), else the system's roots. `field` names the setting in errors.
pub(crate) fn client(ca_pem: &str, field: &str) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy();
    if !ca_pem.trim().is_empty() {
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| format!("invalid {field}: {}", cause(&e)))?;
        if certs.is_empty() {
            return Err(format!("invalid {field}: no PEM certificate found"));
        }
        // tresor-client's TLS config, the CLI's: besides webpki's chain check it takes a
        // server certificate that is itself one of the named CAs (a self-signed `CA:TRUE`
        // certificate, as `openssl req -x509` makes), which Go's verifier, and so Vault, accept.
        let opts = tresor_client::TlsOptions {
            ca_cert_pem: Some(ca_pem.to_owned()),
            ..Default::default()
        };
        let tls = tresor_client::tls::rustls_config(&opts)
            .map_err(|e| format!("invalid {field}: {e}"))?;
        b = b.tls_backend_preconfigured(tls);
    }
    b.build()
        .map_err(|e| format!("invalid {field}: {}", cause(&e)))
}

/// What is wrong with a CA bundle: reqwest's own text is only "builder error", its causes
/// say what (`invalid certificate encoding`, `invalid peer certificate: BadEncoding`).
fn cause(e: &reqwest::Error) -> String {
    let s = chain(e);
    match s.strip_prefix("builder error: ") {
        Some(rest) => rest.to_owned(),
        None => s,
    }
}

/// An error with its causes (`reqwest`'s own text leaves out why a connection failed).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
pub(crate) fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes one form or query component (`+` is a space).
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16)
                    .ok()
                    .filter(|_| hex.bytes().all(|c| c.is_ascii_hexdigit()))
                    .ok_or(())
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a form body or query string into pairs.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// `n` random bytes, base64url without padding (state, nonce, PKCE verifier).
pub(crate) fn random_token(n: usize) -> Result<String, String> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| "the random generator failed".to_owned())?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The PKCE S256 challenge of a verifier: base64url(SHA-256(verifier)).
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Constant-time comparison of two secrets (state, nonce).
pub(crate) fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_round_trip() {
        let f = form(&[
            ("redirect_uri", "http://127.0.0.1:8250/oidc/callback"),
            ("a b", "c&d=e"),
        ]);
        assert_eq!(
            f,
            "redirect_uri=http%3A%2F%2F127.0.0.1%3A8250%2Foidc%2Fcallback&a%20b=c%26d%3De"
        );
        let back = parse_form(&f);
        assert_eq!(back[0].1, "http://127.0.0.1:8250/oidc/callback");
        assert_eq!(back[1], ("a b".to_owned(), "c&d=e".to_owned()));
        assert_eq!(decode("a+b%2"), "a b%2");
    }

    #[test]
    fn pkce_matches_rfc7636_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
