//! End to end: bad input gets a clear 4xx in Vault's shape (`{"errors":[...]}` naming the
//! problem) and changes nothing. Driven with curl, as an operator poking the API would.

mod common;

use common::{Server, errors, free_port, plain_config, strings};
use serde_json::Value;

/// Asserts `(code, body)` is `want` with an error mentioning `needle`.
#[track_caller]
fn rejected(got: (u16, Value), want: u16, needle: &str) {
    let (code, body) = got;
    assert_eq!(code, want, "{body}");
    let errs = errors(&body);
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "expected an error mentioning {needle:?}, got {errs:?}"
    );
}

fn initialized(s: &Server) -> bool {
    let (code, v) = s.api("GET", "sys/init", None, None);
    assert_eq!(code, 200, "{v}");
    v["initialized"].as_bool().expect("initialized flag")
}

#[test]
fn bad_init_requests_are_refused_and_leave_the_server_uninitialized() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(tmp.path(), port, &plain_config(port, ""));

    rejected(
        s.api("PUT", "sys/init", Some(r#"{"secret_shares": 5,"#), None),
        400,
        "JSON",
    );
    assert!(!initialized(&s));
    rejected(s.api("PUT", "sys/init", Some("[1, 2]"), None), 400, "JSON");
    assert!(!initialized(&s));
    rejected(
        s.api(
            "PUT",
            "sys/init",
            Some(r#"{"secret_shares":3,"secret_threshold":5}"#),
            None,
        ),
        400,
        "threshold cannot be larger than shares",
    );
    assert!(!initialized(&s));
    rejected(
        s.api(
            "PUT",
            "sys/init",
            Some(r#"{"secret_shares":256,"secret_threshold":3}"#),
            None,
        ),
        400,
        "shares must be less than 256",
    );
    assert!(!initialized(&s));
    rejected(
        s.api(
            "PUT",
            "sys/init",
            Some(r#"{"secret_shares":"many","secret_threshold":3}"#),
            None,
        ),
        400,
        "secret_shares",
    );
    assert!(!initialized(&s));
    let st = s.seal_status();
    assert_eq!((&st["n"], &st["t"]), (&0.into(), &0.into()), "{st}");

    // 255 shares is the limit and works; a second init is refused and changes nothing.
    let init = s.init(255, 3);
    assert_eq!(strings(&init["keys"]).len(), 255);
    rejected(
        s.api(
            "PUT",
            "sys/init",
            Some(r#"{"secret_shares":1,"secret_threshold":1}"#),
            None,
        ),
        400,
        "already initialized",
    );
    let st = s.seal_status();
    assert_eq!(
        (&st["n"], &st["t"], &st["sealed"]),
        (&255.into(), &3.into(), &Value::Bool(true)),
        "{st}"
    );
    // The original shares still unseal it.
    let keys = strings(&init["keys_base64"]);
    s.unseal(&[&keys[10], &keys[200], &keys[254]]);
}

#[test]
fn wrong_and_corrupt_unseal_keys_are_refused_and_routing_errors_have_vault_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    std::fs::create_dir_all(tmp.path().join("a")).unwrap();
    std::fs::create_dir_all(tmp.path().join("b")).unwrap();
    let s = Server::start(&tmp.path().join("a"), p1, &plain_config(p1, ""));
    let other = Server::start(&tmp.path().join("b"), p2, &plain_config(p2, ""));
    let init = s.init(3, 2);
    let keys = strings(&init["keys_base64"]);
    let root = init["root_token"].as_str().unwrap().to_owned();
    // A valid-looking 33-byte share, from another server's init.
    let foreign = strings(&other.init(3, 2)["keys_base64"]).remove(0);
    drop(other);

    let unseal = |k: &str| {
        s.api(
            "PUT",
            "sys/unseal",
            Some(&format!(r#"{{"key":"{k}"}}"#)),
            None,
        )
    };

    // Wrong share: one good share, then the foreign one reaches the threshold and fails.
    let (code, v) = unseal(&keys[0]);
    assert_eq!((code, &v["progress"]), (200, &1.into()), "{v}");
    rejected(unseal(&foreign), 400, "invalid key");
    let st = s.seal_status();
    assert_eq!(
        (&st["sealed"], &st["progress"]),
        (&Value::Bool(true), &0.into()),
        "progress must reset: {st}"
    );

    // Corrupt base64: refused before it counts; progress is unchanged.
    let (code, v) = unseal(&keys[1]);
    assert_eq!((code, &v["progress"]), (200, &1.into()), "{v}");
    let nonce = v["nonce"].clone();
    rejected(unseal("!!not*base64??"), 400, "key");
    // A share of the wrong length (32 bytes where 33 are expected) is refused too.
    rejected(unseal(&"ab".repeat(32)), 400, "key");
    rejected(
        s.api("PUT", "sys/unseal", Some("{\"key\": "), None),
        400,
        "JSON",
    );
    rejected(s.api("PUT", "sys/unseal", Some("{}"), None), 400, "key");
    let st = s.seal_status();
    assert_eq!(
        (&st["sealed"], &st["progress"], &st["nonce"]),
        (&Value::Bool(true), &1.into(), &nonce),
        "{st}"
    );

    // The right shares still work.
    let (code, v) = unseal(&keys[2]);
    assert_eq!((code, &v["sealed"]), (200, &Value::Bool(false)), "{v}");

    // Unknown path: 404 naming the route.
    rejected(
        s.api("GET", "nonexistent/thing", None, Some(&root)),
        404,
        "no handler for route",
    );
    // Missing or bogus token: 403.
    rejected(
        s.api("GET", "sys/mounts", None, None),
        403,
        "permission denied",
    );
    rejected(
        s.api("GET", "sys/mounts", None, Some("hvs.not-a-real-token")),
        403,
        "permission denied",
    );
    // A method the endpoint does not take: 405 in Vault's shape.
    let (code, v) = s.api("PUT", "sys/seal-status", Some("{}"), None);
    assert_eq!(code, 405, "{v}");
    errors(&v);
    // And the root token still works after all that.
    let (code, v) = s.api("GET", "sys/mounts", None, Some(&root));
    assert_eq!(code, 200, "{v}");
}

#[test]
fn a_body_over_max_request_size_gets_413_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(
        tmp.path(),
        port,
        &plain_config(port, "max_request_size = 1024"),
    );

    let padding = "x".repeat(2048);
    let big = format!(r#"{{"secret_shares":1,"secret_threshold":1,"padding":"{padding}"}}"#);
    let (code, v) = s.api("PUT", "sys/init", Some(&big), None);
    assert_eq!(code, 413, "{v}");
    assert!(!errors(&v).is_empty(), "413 must say why: {v}");
    assert!(!initialized(&s), "an oversized init must not initialize");

    // Just under the limit is served.
    let small = format!(
        r#"{{"secret_shares":1,"secret_threshold":1,"padding":"{}"}}"#,
        "x".repeat(900)
    );
    let (code, v) = s.api("PUT", "sys/init", Some(&small), None);
    assert_eq!(code, 200, "{v}");
    assert!(initialized(&s));
}

#[test]
fn root_generation_needs_an_unsealed_server() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(tmp.path(), port, &plain_config(port, ""));
    s.init(3, 2);
    for (method, path, body) in [
        ("GET", "sys/generate-root/attempt", None),
        ("PUT", "sys/generate-root/attempt", Some("{}")),
        ("GET", "sys/generate-root-token/attempt", None),
    ] {
        let got = s.api(method, path, body, None);
        rejected(got, 503, "sealed");
    }
}
