//! The HTTP request decoder: method, path (percent-decoding, UTF-8 and control-character
//! checks), query string (list/help flags, parameters into data), headers (token,
//! X-Vault-Wrap-TTL, X-Forwarded-For, content types) and body (JSON object, or raw DER for
//! OCSP) into the typed request — through `tresor_http::dispatch`, the function the
//! listener calls. The core is fresh and sealed, so every decoded request stops at the seal
//! gate (or is served by the bare seal endpoints: `sys/init`, `sys/unseal`, ...).
//!
//! Input: `METHOD URI\n`, then `Name: value` header lines, a blank line, then the body.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use tresor_core::{Core, CoreConfig};
use tresor_http::{Cidr, ConnInfo, ForwardedFor, HttpConfig};

fn split_line(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == b'\n') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

/// The `http_request` target: one input.
pub fn http_request(data: &[u8]) {
    let (first, mut rest) = split_line(data);
    let Ok(first) = std::str::from_utf8(first) else {
        return;
    };
    let (method, uri) = first.split_once(' ').unwrap_or((first, "/v1/"));
    let mut builder = http::Request::builder().method(method).uri(uri);
    loop {
        let (line, tail) = split_line(rest);
        rest = tail;
        if line.is_empty() || line == b"\r" {
            break;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        builder = builder.header(&line[..colon], value);
    }
    let Ok(req) = builder.body(Full::new(Bytes::copy_from_slice(rest))) else {
        return;
    };

    let core = Core::new(
        Arc::new(tresor_physical::InmemBackend::new()),
        CoreConfig::default(),
    );
    let cfg = HttpConfig {
        max_request_size: 64 * 1024,
        read_timeout: None,
        forwarded_for: Some(ForwardedFor {
            authorized_addrs: vec!["127.0.0.0/8".parse::<Cidr>().expect("cidr")],
            hop_skips: 1,
            reject_not_authorized: true,
            reject_not_present: false,
        }),
        ..HttpConfig::default()
    };
    let conn = ConnInfo {
        remote_addr: Some("127.0.0.1:40000".into()),
        peer_certs: Vec::new(),
    };
    let resp = crate::RT.block_on(tresor_http::dispatch(&core, &cfg, &conn, req));
    // Every answer is an HTTP status the server can send.
    assert!(resp.status().as_u16() >= 200 && resp.status().as_u16() < 600);
}
