//! The LDAP auth method's inputs that need no directory (`tresor-ldap`): the `config` write
//! (LDAP URLs, TLS versions, the CA `certificate`, the client certificate and key as PEM, DNs,
//! attribute names, the user and group filter templates, timeouts, token settings) and its
//! read back, and the `users/:name` and `groups/:name` entries — through the method's handler.
//!
//! Not reached: filling the filter templates, which happens only after binding to a directory
//! (the method's own tests run a real OpenLDAP). A login goes as far as the connection, to
//! 127.0.0.1:1 where nothing listens.
//!
//! Input: first byte (mod 4) 0: the rest is a `config` body as JSON (its `url` kept on
//! 127.0.0.1:1), or the `url` itself; 1: PEM for `certificate`, then for `client_tls_cert`
//! and `client_tls_key`; 2: a `users/:name` body as JSON, or the user's groups; 3: a login's
//! username (the password is fixed).

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use tresor_sdk::Operation::{Read, Update};

use crate::{Engine, obj};

const DEAD: &str = "ldap://127.0.0.1:1";

static LDAP: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_ldap::backend,
        &[
            (
                "config",
                obj(&[
                    ("url", json!(DEAD)),
                    ("userdn", json!("ou=users,dc=example,dc=com")),
                    ("groupdn", json!("ou=groups,dc=example,dc=com")),
                    ("userattr", json!("uid")),
                    ("connection_timeout", json!("1s")),
                    ("request_timeout", json!("1s")),
                ]),
            ),
            ("groups/ops", obj(&[("policies", json!(["ops"]))])),
        ],
    )
});

fn config(body: Map<String, Value>) {
    let s = LDAP.session();
    if s.call(Update, "config", body).is_ok() {
        let _ = s.call(Read, "config", Map::new());
    }
}

/// The `ldap` target: one input.
pub fn ldap(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let s = |t: &str| Value::String(t.to_owned());
    let object = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    };
    match sel % 4 {
        0 => match object {
            Some(mut m) => {
                if m.contains_key("url") {
                    m.insert("url".into(), json!(DEAD));
                }
                config(m);
            }
            None => config(obj(&[("url", s(text))])),
        },
        1 => {
            config(obj(&[("certificate", s(text))]));
            config(obj(&[
                ("client_tls_cert", s(text)),
                ("client_tls_key", s(text)),
            ]));
        }
        2 => {
            let body = object.unwrap_or_else(|| obj(&[("groups", s(text))]));
            let sess = LDAP.session();
            if sess.call(Update, "users/u", body).is_ok() {
                let _ = sess.call(Read, "users/u", Map::new());
            }
        }
        _ => {
            let _ = LDAP.call(
                Update,
                &format!("login/{text}"),
                obj(&[("password", json!("pw"))]),
                None,
            );
        }
    }
}
