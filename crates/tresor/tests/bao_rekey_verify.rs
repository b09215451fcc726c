//! Issue 12: a rekey with verification, end to end with the `bao` CLI (OpenBao 2.7.2) against
//! `tresor server` on embedded storage: init 3/2, `operator rekey -init -verify`, the old
//! shares, then `operator rekey -verify -nonce=...` with the NEW shares; after a seal only the
//! new shares unseal. Until the verification completes the old shares stay in force.

mod common;

use common::{Server, free_port, plain_config, strings};
use serde_json::Value;

#[test]
fn bao_rekey_with_verification_switches_keys_only_after_the_new_shares_are_proven() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(tmp.path(), port, &plain_config(port, ""));

    let init = s
        .bao(&[
            "operator",
            "init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ])
        .expect(0, "operator init")
        .json();
    let old = strings(&init["unseal_keys_b64"]);
    let root = init["root_token"].as_str().unwrap().to_owned();
    for k in &old[..2] {
        s.bao(&["operator", "unseal", k]).expect(0, "unseal");
    }
    s.bao_as(
        &root,
        &["secrets", "enable", "-version=2", "-path=secret", "kv"],
    )
    .expect(0, "enable kv");
    s.bao_as(&root, &["kv", "put", "secret/rekeyed", "colour=amber"])
        .expect(0, "kv put");

    // Start a rekey to 3 shares / threshold 2 that requires verification.
    let rk = s
        .bao(&[
            "operator",
            "rekey",
            "-init",
            "-verify",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ])
        .expect(0, "rekey -init -verify")
        .json();
    assert_eq!(
        (&rk["started"], &rk["verification_required"]),
        (&Value::Bool(true), &Value::Bool(true)),
        "{rk}"
    );
    let nonce = rk["nonce"].as_str().unwrap().to_owned();

    // Two old shares: the new shares come back with a verification nonce.
    let mut last = Value::Null;
    for k in &old[..2] {
        last = s
            .bao(&[
                "operator",
                "rekey",
                &format!("-nonce={nonce}"),
                "-format=json",
                k,
            ])
            .expect(0, "rekey with an old share")
            .json();
    }
    assert_eq!(last["complete"], true, "{last}");
    assert_eq!(last["verification_required"], true, "{last}");
    let new = strings(&last["keys_base64"]);
    assert_eq!(new.len(), 3, "{last}");
    let vnonce = last["verification_nonce"].as_str().unwrap_or("").to_owned();
    assert!(!vnonce.is_empty(), "{last}");

    // The verification status, through the CLI.
    let st = s
        .bao(&["operator", "rekey", "-verify", "-status", "-format=json"])
        .expect(0, "rekey -verify -status")
        .json();
    assert_eq!(
        (&st["nonce"], &st["started"], &st["progress"]),
        (
            &Value::from(vnonce.clone()),
            &Value::Bool(true),
            &Value::from(0)
        ),
        "{st}"
    );

    // An old share given as a verification share does not make the new key: with one new
    // share it fails, and the verification starts again under a new nonce.
    s.bao(&[
        "operator",
        "rekey",
        "-verify",
        &format!("-nonce={vnonce}"),
        &new[0],
    ])
    .expect(0, "verify with a new share");
    let o = s.bao(&[
        "operator",
        "rekey",
        "-verify",
        &format!("-nonce={vnonce}"),
        &old[2],
    ]);
    assert_ne!(o.code, 0, "an old share must not verify the new key\n{o}");
    let st = s
        .bao(&["operator", "rekey", "-verify", "-status", "-format=json"])
        .expect(0, "status after a failed verification")
        .json();
    let vnonce = st["nonce"].as_str().unwrap().to_owned();
    assert_eq!(st["progress"], 0, "{st}");

    // Cancelling the verification (not the rekey) restarts it once more.
    let (code, body) = s.api("DELETE", "sys/rekey/verify", None, None);
    assert_eq!(code, 200, "{body}");
    assert_ne!(body["nonce"], Value::from(vnonce.clone()), "{body}");
    let vnonce = body["nonce"].as_str().unwrap().to_owned();

    // Still the old shares in force: status shows the old configuration.
    let status = s
        .bao(&["status", "-format=json"])
        .expect(0, "status")
        .json();
    assert_eq!((&status["t"], &status["n"]), (&2.into(), &3.into()));

    // Two NEW shares complete it.
    s.bao(&[
        "operator",
        "rekey",
        "-verify",
        &format!("-nonce={vnonce}"),
        &new[1],
    ])
    .expect(0, "verify 1");
    let done = s
        .bao(&[
            "operator",
            "rekey",
            "-verify",
            &format!("-nonce={vnonce}"),
            &new[2],
        ])
        .expect(0, "verify 2");
    assert!(
        done.stdout.contains("verification successful"),
        "the CLI reports the switch\n{done}"
    );

    // Seal: the old shares no longer open it, the new ones do, and the data is there.
    s.bao_as(&root, &["operator", "seal"]).expect(0, "seal");
    s.bao(&["operator", "unseal", &old[0]])
        .expect(0, "one old share (progress only)");
    let o = s.bao(&["operator", "unseal", &old[1]]);
    assert_ne!(o.code, 0, "old shares must not unseal after the rekey\n{o}");
    for k in &new[1..] {
        s.bao(&["operator", "unseal", k]).expect(0, "unseal new");
    }
    let st = s
        .bao(&["status", "-format=json"])
        .expect(0, "status")
        .json();
    assert_eq!(st["sealed"], false, "{st}");
    let kv = s
        .bao_as(&root, &["kv", "get", "-format=json", "secret/rekeyed"])
        .expect(0, "kv get")
        .json();
    assert_eq!(kv["data"]["data"]["colour"], "amber", "{kv}");
}
