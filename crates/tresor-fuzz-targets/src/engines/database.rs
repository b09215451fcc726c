//! The database secrets engine's inputs that need no live database (`tresor-database`,
//! `tresor-password`): connection URLs for PostgreSQL (URL and key=value forms) and MySQL with
//! their `{{username}}`/`{{password}}` placeholders, `username_template` (the Go-template
//! subset: pipelines, `printf`, `truncate`, `timestamp`, ...), the statements of a role (split
//! into statements when the role is written), and password policies (HCL, or base64 of it)
//! with a password generated from each that parses — through the engine's handler, with
//! `verify_connection=false` so nothing connects; plus `tresor_password::PasswordPolicy`
//! directly (what `sys/policies/password` uses), checking that a generated password has the
//! policy's length and satisfies its rules.
//!
//! Not reached: the placeholders of statements are filled in only when credentials are
//! created, which needs a database (the engine's own tests run that against real servers).
//!
//! Input: first byte (mod 6) 0: the rest is a PostgreSQL `connection_url`; 1: a MySQL one;
//! 2: a `config/:name` body as JSON (over the PostgreSQL plugin; `verify_connection` is always
//! false); 3: a `username_template`; 4: a password policy, written to `password_policies/f`
//! and used by `password_policies/f/generate`; 5: a role body as JSON, or its
//! `creation_statements`.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};
use tresor_password::PasswordPolicy;
use tresor_sdk::Operation::{Read, Update};

use crate::{Engine, obj};

const PG: &str = "postgresql-database-plugin";
const PG_URL: &str = "postgresql://{{username}}:{{password}}@127.0.0.1:1/postgres";

static DB: LazyLock<Engine> = LazyLock::new(|| {
    Engine::new(
        tresor_database::backend,
        &[
            (
                "password_policies/p",
                obj(&[(
                    "policy",
                    json!(
                        "length = 20\nrule \"charset\" {\n  charset = \"abcdefghij0123456789\"\n  min-chars = 2\n}\n"
                    ),
                )]),
            ),
            (
                "config/pg",
                obj(&[
                    ("plugin_name", json!(PG)),
                    ("connection_url", json!(PG_URL)),
                    ("username", json!("admin")),
                    ("password", json!("secret")),
                    ("allowed_roles", json!(["*"])),
                    ("verify_connection", json!(false)),
                ]),
            ),
        ],
    )
});

fn config(extra: Map<String, Value>) {
    let mut body = obj(&[
        ("plugin_name", json!(PG)),
        ("connection_url", json!(PG_URL)),
        ("username", json!("admin")),
        ("password", json!("secret")),
    ]);
    body.extend(extra);
    body.insert("verify_connection".into(), json!(false));
    let s = DB.session();
    if s.call(Update, "config/x", body).is_ok() {
        let _ = s.call(Read, "config/x", Map::new());
    }
}

/// The `database` target: one input.
pub fn database(data: &[u8]) {
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
    match sel % 6 {
        0 => config(obj(&[("connection_url", s(text))])),
        1 => config(obj(&[
            ("plugin_name", json!("mysql-database-plugin")),
            ("connection_url", s(text)),
        ])),
        2 => config(object.unwrap_or_else(|| obj(&[("connection_url", s(text))]))),
        3 => config(obj(&[("username_template", s(text))])),
        4 => {
            if let Ok(policy) = PasswordPolicy::parse(text) {
                let min: usize = policy.rules.iter().map(|r| r.min_chars).sum();
                if let Ok(p) = policy.generate() {
                    assert_eq!(p.chars().count(), policy.length, "{text:?}");
                    assert!(min <= policy.length, "{text:?}");
                    for r in &policy.rules {
                        let n = p.chars().filter(|c| r.charset.contains(c)).count();
                        assert!(n >= r.min_chars, "{text:?}: a rule is not satisfied");
                    }
                }
            }
            let sess = DB.session();
            if sess
                .call(Update, "password_policies/f", obj(&[("policy", s(text))]))
                .is_ok()
            {
                let _ = sess.call(Read, "password_policies/f/generate", Map::new());
            }
        }
        _ => {
            let mut body = obj(&[("db_name", json!("pg"))]);
            match object {
                Some(m) => body.extend(m),
                None => {
                    body.insert("creation_statements".into(), s(text));
                }
            }
            let sess = DB.session();
            if sess.call(Update, "roles/x", body).is_ok() {
                let _ = sess.call(Read, "roles/x", Map::new());
            }
        }
    }
}
