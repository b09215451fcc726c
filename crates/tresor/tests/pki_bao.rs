//! Issue 5, "done when" 4 (bao half): the `bao pki` commands against `tresor server -dev` as a
//! new user types them: `bao pki issue` (a new intermediate in another mount),
//! `bao pki verify-sign`, `bao pki list-intermediates`, `bao pki reissue` and
//! `bao pki health-check`, which must run every check to the end. Tresor's own `tresor pki`
//! helpers (issue, verify-sign, list-intermediates) are checked against bao's answers.

mod common;

use std::process::Command;

use common::{Out, Server, clean_command, free_port, run};
use serde_json::Value;

/// Issuer ids of a mount, through `bao list`.
fn issuer_ids(s: &Server, mount: &str) -> Vec<String> {
    let v = s
        .bao_as(
            "root",
            &["list", "-format=json", &format!("{mount}/issuers")],
        )
        .expect(0, "list issuers")
        .json();
    common::strings(&v)
}

/// `tresor ARGS` (the CLI of the binary under test) against the server, as root.
fn tresor(s: &Server, args: &[&str]) -> Out {
    run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .args(args)
        .current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr)
        .env("VAULT_TOKEN", "root"))
}

#[test]
fn bao_pki_issue_verify_sign_list_intermediates_reissue_and_health_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    let bao = |args: &[&str], what: &str| s.bao_as("root", args).expect(0, what);

    bao(&["secrets", "enable", "pki"], "enable pki");
    bao(
        &["secrets", "tune", "-max-lease-ttl=87600h", "pki"],
        "tune pki",
    );
    let root = bao(
        &[
            "write",
            "-format=json",
            "pki/root/generate/internal",
            "common_name=Example Root",
            "key_type=ec",
            "issuer_name=root",
            "ttl=87600h",
        ],
        "generate root",
    )
    .json();
    let root_id = root["data"]["issuer_id"].as_str().unwrap().to_owned();
    bao(
        &["secrets", "enable", "-path=pki_int", "pki"],
        "enable pki_int",
    );
    bao(
        &["secrets", "tune", "-max-lease-ttl=43800h", "pki_int"],
        "tune pki_int",
    );

    // bao pki issue PARENT CHILD_MOUNT: a key and CSR in pki_int, signed by the root,
    // imported back into pki_int under the requested name.
    let issued = bao(
        &[
            "pki",
            "issue",
            "-format=json",
            "-issuer_name=int",
            "/pki/issuer/default",
            "/pki_int/",
            "common_name=Example Intermediate",
            "key_type=ec",
            "ttl=8760h",
        ],
        "bao pki issue",
    )
    .json();
    let data = &issued["data"];
    assert_eq!(data["issuer_name"], "int");
    assert_eq!(data["revoked"], false);
    let int_id = data["issuer_id"].as_str().unwrap().to_owned();
    assert!(issuer_ids(&s, "pki_int").contains(&int_id));
    // The new issuer is signed by the root and is a CA.
    let tmp = dir.path();
    std::fs::write(
        tmp.join("root.pem"),
        root["data"]["certificate"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(tmp.join("int.pem"), data["certificate"].as_str().unwrap()).unwrap();
    let o = run(Command::new("openssl")
        .current_dir(tmp)
        .args(["verify", "-CAfile", "root.pem", "int.pem"]));
    assert_eq!(o.code, 0, "{o}");
    let o = run(Command::new("openssl")
        .current_dir(tmp)
        .args(["x509", "-in", "int.pem", "-noout", "-text"]));
    assert!(o.stdout.contains("CA:TRUE"), "{o}");
    assert!(
        o.stdout.contains("CN=Example Intermediate")
            || o.stdout.contains("CN = Example Intermediate"),
        "{o}"
    );

    // The intermediate issues leaves in its own mount.
    bao(
        &[
            "write",
            "pki_int/roles/web",
            "allowed_domains=example.com",
            "allow_subdomains=true",
            "key_type=ec",
            "max_ttl=24h",
        ],
        "role",
    );
    let leaf = bao(
        &[
            "write",
            "-format=json",
            "pki_int/issue/web",
            "common_name=www.example.com",
        ],
        "issue leaf",
    )
    .json();
    std::fs::write(
        tmp.join("leaf.pem"),
        leaf["data"]["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let o = run(Command::new("openssl").current_dir(tmp).args([
        "verify",
        "-CAfile",
        "root.pem",
        "-untrusted",
        "int.pem",
        "leaf.pem",
    ]));
    assert_eq!(o.code, 0, "{o}");

    // The second argument must be a mount: a role path is refused (Vault answers 404
    // "unsupported path" for pki/roles/web/intermediate/generate/internal, and so do we).
    let o = s.bao_as(
        "root",
        &[
            "pki",
            "issue",
            "-issuer_name=x",
            "/pki/issuer/default",
            "/pki/roles/web",
            "common_name=a.example.com",
        ],
    );
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("unsupported path"), "{o}");

    // verify-sign: every field matches for the real parent...
    let v = bao(
        &[
            "pki",
            "verify-sign",
            "-format=json",
            "/pki/issuer/default",
            "/pki_int/issuer/int",
        ],
        "verify-sign",
    )
    .json();
    for field in [
        "subject_match",
        "path_match",
        "trust_match",
        "key_id_match",
        "signature_match",
    ] {
        assert_eq!(v[field], true, "{field}: {v}");
    }
    // ...and not for an unrelated root in another mount.
    bao(&["secrets", "enable", "-path=other", "pki"], "enable other");
    bao(
        &[
            "write",
            "other/root/generate/internal",
            "common_name=Unrelated Root",
            "key_type=ec",
        ],
        "unrelated root",
    );
    let v = s
        .bao_as(
            "root",
            &[
                "pki",
                "verify-sign",
                "-format=json",
                "/other/issuer/default",
                "/pki_int/issuer/int",
            ],
        )
        .json();
    assert_eq!(v["signature_match"], false, "{v}");
    assert_eq!(v["subject_match"], false, "{v}");

    // list-intermediates: the intermediate is a child of the root, the unrelated root is not.
    let v = bao(
        &[
            "pki",
            "list-intermediates",
            "-format=json",
            "/pki/issuer/default",
            "/pki_int/issuer/int",
            "/other/issuer/default",
        ],
        "list-intermediates",
    )
    .json();
    assert_eq!(v["pki_int/issuer/int"], true, "{v}");
    assert_eq!(v["other/issuer/default"], false, "{v}");

    // reissue: a new issuer in pki_int modelled on the existing one, signed by the root.
    let re = bao(
        &[
            "pki",
            "reissue",
            "-format=json",
            "-issuer_name=int2",
            "/pki/issuer/default",
            "/pki_int/issuer/int",
            "/pki_int/",
        ],
        "reissue",
    )
    .json();
    assert_eq!(re["data"]["issuer_name"], "int2");
    assert_ne!(re["data"]["issuer_id"], int_id.as_str());

    // health-check runs every check on both mounts. With -return-indicator=permission the
    // exit code is non-zero only if a check could not run (permission or version problems).
    let expected_checks = [
        "ca_validity_period",
        "crl_validity_period",
        "root_issued_leaves",
        "role_allows_localhost",
        "role_allows_glob_wildcards",
        "role_no_store_false",
        "audit_visibility",
        "allow_if_modified_since",
        "enable_auto_tidy",
        "tidy_last_run",
        "too_many_certs",
        "enable_acme_issuance",
        "allow_acme_headers",
    ];
    for (mount, issuer) in [("pki", root_id.as_str()), ("pki_int", int_id.as_str())] {
        let o = s
            .bao_as(
                "root",
                &[
                    "pki",
                    "health-check",
                    "-format=json",
                    "-return-indicator=permission",
                    mount,
                ],
            )
            .expect(0, "health-check");
        let v: Value = o.json();
        for check in expected_checks {
            assert!(
                v.get(check).is_some(),
                "{mount}: check {check} missing\n{o}"
            );
        }
        for (check, results) in v.as_object().unwrap() {
            for r in results.as_array().unwrap() {
                let status = r["status"].as_str().unwrap();
                assert!(
                    !matches!(status, "invalid_version" | "insufficient_permissions"),
                    "{mount}: {check} could not run: {r}"
                );
            }
        }
        // The CRL check read and parsed both the full and the delta CRL of the issuer.
        let crl: Vec<(String, String)> = v["crl_validity_period"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["endpoint"].as_str().unwrap().to_owned(),
                    r["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for suffix in ["crl", "crl/delta"] {
            let want = format!("/{mount}/issuer/{issuer}/{suffix}");
            assert!(
                crl.contains(&(want.clone(), "ok".into())),
                "{want} not ok in {crl:?}"
            );
        }
        // A fresh mount has never been tidied: Vault's check says so as critical.
        assert_eq!(v["tidy_last_run"][0]["status"], "critical", "{o}");
    }

    // tresor pki: the same answers as bao's.
    for (issuer, issued) in [
        ("/pki/issuer/default", "/pki_int/issuer/int"),
        ("/other/issuer/default", "/pki_int/issuer/int"),
    ] {
        let ours = tresor(&s, &["pki", "verify-sign", "-format=json", issuer, issued])
            .expect(0, "tresor pki verify-sign")
            .json();
        let theirs = s
            .bao_as(
                "root",
                &["pki", "verify-sign", "-format=json", issuer, issued],
            )
            .json();
        assert_eq!(ours, theirs, "verify-sign {issuer} {issued}");
    }
    let o = tresor(
        &s,
        &[
            "pki",
            "verify-sign",
            "/pki/issuer/default",
            "/pki_int/issuer/int",
        ],
    )
    .expect(0, "verify-sign table");
    assert!(
        o.stdout
            .starts_with("issuer:pki/issuer/default\nissued:pki_int/issuer/int\n"),
        "{o}"
    );
    assert!(o.stdout.contains("signature_match    true"), "{o}");
    let children = [
        "/pki_int/issuer/int",
        "/pki_int/issuer/int2",
        "/other/issuer/default",
    ];
    let mut args = vec![
        "pki",
        "list-intermediates",
        "-format=json",
        "/pki/issuer/default",
    ];
    args.extend(children);
    let ours = tresor(&s, &args)
        .expect(0, "tresor pki list-intermediates")
        .json();
    assert_eq!(ours, s.bao_as("root", &args).json());
    assert_eq!(ours["pki_int/issuer/int2"], true, "{ours}");
    // Without children: every issuer of every PKI mount; the root signed exactly the two
    // intermediates (the root's copy in pki_int is the parent itself and is left out).
    let all = tresor(
        &s,
        &[
            "pki",
            "list-intermediates",
            "-format=json",
            "/pki/issuer/default",
        ],
    )
    .expect(0, "list-intermediates, all")
    .json();
    let signed: Vec<&String> = all
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| **v == Value::Bool(true))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(signed.len(), 2, "{all}");
    assert!(
        all.as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("other/issuer/")),
        "{all}"
    );
    // tresor pki issue makes an intermediate that bao agrees the root signed.
    let made = tresor(
        &s,
        &[
            "pki",
            "issue",
            "-format=json",
            "-issuer_name=int3",
            "/pki/issuer/default",
            "/pki_int/",
            "common_name=Third Intermediate",
            "key_type=ec",
            "ttl=100h",
        ],
    )
    .expect(0, "tresor pki issue")
    .json();
    assert_eq!(made["data"]["issuer_name"], "int3", "{made}");
    let v = bao(
        &[
            "pki",
            "verify-sign",
            "-format=json",
            "/pki/issuer/default",
            "/pki_int/issuer/int3",
        ],
        "bao verify-sign of tresor's intermediate",
    )
    .json();
    assert_eq!(v["signature_match"], true, "{v}");
    assert_eq!(v["path_match"], true, "{v}");
    // A role path is not an issuer: a usage error (exit 1) before any request.
    let o = tresor(
        &s,
        &[
            "pki",
            "issue",
            "/pki/roles/web",
            "/pki_int/",
            "common_name=x",
        ],
    );
    assert_eq!(o.code, 1, "{o}");
    assert!(o.stderr.contains("not an issuer path"), "{o}");

    // With the default indicator, that critical finding is the exit status, as in Vault.
    let o = s.bao_as("root", &["pki", "health-check", "pki"]);
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stdout.contains("crl_validity_period"), "{o}");
}
