//! Issue 12, "Vault behaviours that differ today", end to end against `tresor server -dev`
//! with curl and the `bao` CLI (OpenBao 2.7.2).

mod common;

use common::{Server, free_port};
use serde_json::{Value, json};

fn dev() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start_dev(tmp.path(), port);
    (tmp, s)
}

/// A LIST of a prefix with nothing under it is a 404 whose body is `{"errors":[]}`, on every
/// list endpoint, by the LIST verb and by `?list=true`.
#[test]
fn every_empty_listing_is_a_404_with_an_empty_errors_list() {
    let (_tmp, s) = dev();
    let root = Some("root");
    for (path, body) in [
        ("sys/mounts/kv1", json!({"type": "kv"})),
        ("sys/mounts/pki", json!({"type": "pki"})),
    ] {
        let (code, b) = s.api("POST", path, Some(&body.to_string()), root);
        assert_eq!(code, 204, "{path}: {b}");
    }
    let empty = [
        "secret/metadata/",
        "secret/metadata/nothing/here/",
        "kv1/",
        "kv1/nothing/",
        "cubbyhole/",
        "cubbyhole/nothing/",
        "auth/token/roles/",
        "sys/leases/lookup/",
        "sys/leases/lookup/secret/",
        "sys/leases/lookup/auth/token/create/",
        "pki/certs/",
        "pki/certs/revoked/",
        "pki/issuers/",
        "pki/keys/",
        "pki/roles/",
    ];
    for path in empty {
        let (code, b) = s.api("LIST", path, None, root);
        assert_eq!((code, &b), (404, &json!({"errors": []})), "LIST {path}");
        let (code, b) = s.api("GET", &format!("{path}?list=true"), None, root);
        assert_eq!(
            (code, &b),
            (404, &json!({"errors": []})),
            "GET {path}?list=true"
        );
    }

    // The same endpoints list what is there once something is.
    let (code, b) = s.api(
        "POST",
        "auth/token/create",
        Some(r#"{"ttl": "1h", "policies": ["default"]}"#),
        root,
    );
    assert_eq!(code, 200, "{b}");
    let (code, b) = s.api("LIST", "sys/leases/lookup/", None, root);
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["data"]["keys"], json!(["auth/"]), "{b}");
    let (code, b) = s.api("LIST", "sys/leases/lookup/auth/token/create/", None, root);
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["data"]["keys"].as_array().map(Vec::len), Some(1), "{b}");
    s.api(
        "POST",
        "auth/token/roles/r1",
        Some(r#"{"allowed_policies": ["default"]}"#),
        root,
    );
    let (code, b) = s.api("LIST", "auth/token/roles/", None, root);
    assert_eq!((code, &b["data"]["keys"]), (200, &json!(["r1"])), "{b}");
    // Policies and accessors are never empty (default/root, and the caller's own token).
    let (code, b) = s.api("LIST", "sys/policies/acl/", None, root);
    assert_eq!(
        (code, &b["data"]["keys"]),
        (200, &json!(["default", "root"]))
    );
    let (code, b) = s.api("LIST", "auth/token/accessors/", None, root);
    assert_eq!(code, 200, "{b}");
    assert!(!b["data"]["keys"].as_array().unwrap().is_empty(), "{b}");

    // A LIST without sudo on the lease listing is refused, not an empty 404.
    let (_, b) = s.api(
        "POST",
        "auth/token/create",
        Some(r#"{"policies": ["default"]}"#),
        root,
    );
    let t = b["auth"]["client_token"].as_str().unwrap().to_owned();
    let (code, b) = s.api("LIST", "sys/leases/lookup/", None, Some(&t));
    assert_eq!(code, 403, "{b}");
    let _: Value = b;
}

/// `bao read sys/tools/random/16` and `bao write sys/tools/hash/sha2-256 input=...`.
#[test]
fn bao_uses_the_random_and_hash_tools() {
    let (_tmp, s) = dev();
    let o = s
        .bao_as("root", &["read", "-format=json", "sys/tools/random/16"])
        .expect(0, "bao read sys/tools/random/16");
    let v = o.json();
    let b64 = v["data"]["random_bytes"].as_str().unwrap_or_default();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("{e}: {o}"));
    assert_eq!(bytes.len(), 16, "{o}");
    let o = s
        .bao_as(
            "root",
            &[
                "write",
                "-format=json",
                "sys/tools/random/all/8",
                "format=hex",
            ],
        )
        .expect(0, "bao write sys/tools/random/all/8");
    assert_eq!(
        o.json()["data"]["random_bytes"].as_str().map(str::len),
        Some(16),
        "{o}"
    );
    // A token with only the default policy may hash.
    let (_, b) = s.api(
        "POST",
        "auth/token/create",
        Some(r#"{"policies": ["default"]}"#),
        Some("root"),
    );
    let t = b["auth"]["client_token"].as_str().unwrap().to_owned();
    let o = s
        .bao_as(
            &t,
            &[
                "write",
                "-format=json",
                "sys/tools/hash/sha2-256",
                "input=aGVsbG8=",
            ],
        )
        .expect(0, "bao write sys/tools/hash/sha2-256");
    assert_eq!(
        o.json()["data"]["sum"],
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "{o}"
    );
    let o = s
        .bao_as(
            &t,
            &[
                "write",
                "-field=sum",
                "sys/tools/hash",
                "input=aGVsbG8=",
                "algorithm=sha3-512",
                "format=base64",
            ],
        )
        .expect(0, "bao write sys/tools/hash with the algorithm in the body");
    assert_eq!(o.stdout.trim().len(), 88, "{o}");
}

/// `auth/token/lookup` of a token that does not exist, or was revoked: 403 `bad token`.
#[test]
fn looking_up_a_missing_or_revoked_token_is_403_bad_token() {
    let (_tmp, s) = dev();
    let (code, b) = s.api(
        "POST",
        "auth/token/lookup",
        Some(r#"{"token": "hvs.doesnotexist"}"#),
        Some("root"),
    );
    assert_eq!((code, &b), (403, &json!({"errors": ["bad token"]})));
    let (_, b) = s.api(
        "POST",
        "auth/token/create",
        Some(r#"{"policies": ["default"]}"#),
        Some("root"),
    );
    let t = b["auth"]["client_token"].as_str().unwrap().to_owned();
    s.bao_as("root", &["token", "revoke", &t])
        .expect(0, "revoke");
    let o = s.bao_as("root", &["token", "lookup", &t]);
    assert_eq!(o.code, 2, "{o}");
    assert!(
        o.stderr.contains("Code: 403") && o.stderr.contains("bad token"),
        "{o}"
    );
}

/// `bao secrets enable generic` makes a KV version 1 mount of type `generic`; an unknown type
/// names the types there are.
#[test]
fn bao_enables_generic_as_kv_version_1() {
    let (_tmp, s) = dev();
    s.bao_as("root", &["secrets", "enable", "generic"])
        .expect(0, "bao secrets enable generic");
    let list = s
        .bao_as("root", &["secrets", "list", "-format=json"])
        .expect(0, "secrets list")
        .json();
    assert_eq!(list["generic/"]["type"], "generic", "{list}");
    s.bao_as("root", &["kv", "put", "generic/app", "colour=teal"])
        .expect(0, "kv put on a generic mount");
    let got = s
        .bao_as("root", &["kv", "get", "-format=json", "generic/app"])
        .expect(0, "kv get")
        .json();
    assert_eq!(got["data"]["colour"], "teal", "version 1 shape: {got}");
    let o = s
        .bao_as("root", &["read", "-format=json", "generic/app"])
        .expect(0, "read");
    assert_eq!(o.json()["data"]["colour"], "teal", "{o}");
    let o = s.bao_as(
        "root",
        &["secrets", "enable", "-version=2", "-path=g2", "generic"],
    );
    assert_ne!(o.code, 0, "generic takes no version, as in Vault\n{o}");
    let o = s.bao_as("root", &["secrets", "enable", "foo"]);
    assert_ne!(o.code, 0, "{o}");
    assert!(
        o.stderr
            .contains("plugin not found in the catalog: foo (available: database, generic, kv, pki, ssh, totp, transit)"),
        "{o}"
    );
}

/// `bao plugin list` (and `bao plugin list secret`, `bao plugin info secret kv`) read the
/// built-in catalog.
#[test]
fn bao_lists_the_built_in_plugins() {
    let (_tmp, s) = dev();
    let o = s
        .bao_as("root", &["plugin", "list", "-format=json"])
        .expect(0, "bao plugin list");
    let v = o.json();
    let names: Vec<(String, String)> = v["details"]
        .as_array()
        .unwrap_or_else(|| panic!("{o}"))
        .iter()
        .map(|p| {
            (
                p["type"].as_str().unwrap_or_default().to_owned(),
                p["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for want in [
        ("auth", "token"),
        ("secret", "cubbyhole"),
        ("secret", "kv"),
        ("secret", "pki"),
        ("secret", "system"),
        // The database engine's plugins, as Vault lists its built-in ones.
        ("database", "mysql-database-plugin"),
        ("database", "postgresql-database-plugin"),
    ] {
        assert!(
            names.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {names:?}"
        );
    }
    let o = s
        .bao_as("root", &["plugin", "list"])
        .expect(0, "bao plugin list (table)");
    assert!(
        o.stdout
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["token", "auth"])),
        "{o}"
    );
    let o = s
        .bao_as("root", &["plugin", "list", "secret"])
        .expect(0, "bao plugin list secret");
    for n in ["cubbyhole", "kv", "pki", "system"] {
        assert!(
            o.stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(n)),
            "{n}: {o}"
        );
    }
    let o = s
        .bao_as("root", &["plugin", "list", "database"])
        .expect(0, "bao plugin list database");
    assert!(o.stdout.contains("mysql-rds-database-plugin"), "{o}");
    let o = s
        .bao_as(
            "root",
            &[
                "plugin",
                "info",
                "-format=json",
                "database",
                "postgresql-database-plugin",
            ],
        )
        .expect(0, "bao plugin info database postgresql-database-plugin");
    assert_eq!(o.json()["builtin"], json!(true), "{o}");
    let o = s
        .bao_as("root", &["plugin", "info", "-format=json", "secret", "kv"])
        .expect(0, "bao plugin info secret kv");
    let v = o.json();
    assert_eq!(
        (&v["name"], &v["builtin"]),
        (&json!("kv"), &json!(true)),
        "{o}"
    );
}

/// The merged ACL through bao, and path-help for every path issue 12 added.
#[test]
fn resultant_acl_and_help_for_the_new_paths() {
    let (_tmp, s) = dev();
    let (_, b) = s.api(
        "POST",
        "auth/token/create",
        Some(r#"{"policies": ["default"]}"#),
        Some("root"),
    );
    let t = b["auth"]["client_token"].as_str().unwrap().to_owned();
    let o = s
        .bao_as(
            &t,
            &["read", "-format=json", "sys/internal/ui/resultant-acl"],
        )
        .expect(0, "bao read sys/internal/ui/resultant-acl");
    let v = o.json();
    assert_eq!(v["data"]["root"], false, "{o}");
    assert_eq!(
        v["data"]["exact_paths"]["auth/token/lookup-self"]["capabilities"],
        json!(["read"]),
        "{o}"
    );
    assert_eq!(
        v["data"]["glob_paths"]["sys/tools/hash/"]["capabilities"],
        json!(["update"]),
        "{o}"
    );
    for path in [
        "sys/tools/random",
        "sys/tools/random/16",
        "sys/tools/random/all/16",
        "sys/tools/hash",
        "sys/tools/hash/sha2-256",
        "sys/plugins/catalog",
        "sys/plugins/catalog/secret",
        "sys/plugins/catalog/secret/kv",
        "sys/internal/ui/resultant-acl",
    ] {
        let (code, b) = s.api("GET", &format!("{path}?help=1"), None, Some("root"));
        assert_eq!(code, 200, "{path}: {b}");
        let help = b["help"].as_str().unwrap_or_default();
        assert!(help.contains("## DESCRIPTION"), "{path}: {b}");
    }
    let (code, b) = s.api("GET", "sys/rekey/verify", None, None);
    assert_eq!(code, 400, "no rekey: {b}");
    let _: Value = b;
}

/// A listing asked for with GET (or another verb) is Vault's 405 `unsupported operation`,
/// in the core's own tables (sys, token, identity) as in the engines'; a path that is no
/// listing at all stays a 404.
#[test]
fn a_listing_read_with_get_is_405_unsupported_operation() {
    let (_tmp, s) = dev();
    let root = Some("root");
    for path in [
        "sys/policies/acl",
        "sys/version-history",
        "auth/token/roles",
        "auth/token/accessors",
        "identity/entity/id",
        "identity/group/name",
        "transit-not-mounted-so-404",
    ] {
        let (code, b) = s.api("GET", path, None, root);
        if path.ends_with("404") {
            assert_eq!(code, 404, "GET {path}: {b}");
            continue;
        }
        assert_eq!(
            (code, &b),
            (405, &json!({"errors": ["unsupported operation"]})),
            "GET {path}"
        );
        let (code, _) = s.api("LIST", path, None, root);
        assert!(code == 200 || code == 404, "LIST {path}: {code}");
    }
    // Not a listing: still an unsupported path.
    let (code, b) = s.api("GET", "sys/policies/nothing-here", None, root);
    assert_eq!(code, 404, "{b}");
}
