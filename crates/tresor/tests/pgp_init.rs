//! End to end: `sys/init` with `pgp_keys` and `root_token_pgp_key`. Two operators make GnuPG
//! keys in their own keyrings, the server encrypts each share to one of them and the root token
//! to the first, and each operator opens only their own share with `gpg --decrypt`. The
//! decrypted shares unseal the server and the decrypted root token works.

mod common;

use common::gpg::Keyring;
use common::{Server, free_port, plain_config, strings};

#[test]
fn pgp_encrypted_shares_and_root_token_open_with_gpg() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(tmp.path(), port, &plain_config(port, ""));
    let alice = Keyring::new(tmp.path(), "alice");
    let bob = Keyring::new(tmp.path(), "bob");

    let body = serde_json::json!({
        "secret_shares": 2,
        "secret_threshold": 2,
        "pgp_keys": [alice.public_b64(), bob.public_b64()],
        "root_token_pgp_key": alice.public_b64(),
    });
    let (code, init) = s.api("PUT", "sys/init", Some(&body.to_string()), None);
    assert_eq!(code, 200, "{init}");
    let shares = strings(&init["keys_base64"]);
    assert_eq!(shares.len(), 2, "{init}");
    let enc_root = init["root_token"].as_str().unwrap().to_owned();
    assert!(
        !enc_root.starts_with("hvs."),
        "root token must be encrypted: {init}"
    );

    // Each share opens with its own operator's key, and only with it.
    let a = alice
        .decrypt(&shares[0], &tmp.path().join("s0.gpg"))
        .expect(0, "alice decrypts share 0");
    let b = bob
        .decrypt(&shares[1], &tmp.path().join("s1.gpg"))
        .expect(0, "bob decrypts share 1");
    let crossed = bob.decrypt(&shares[0], &tmp.path().join("x.gpg"));
    assert_ne!(
        crossed.code, 0,
        "bob must not open alice's share\n{crossed}"
    );
    let (a, b) = (a.stdout.trim().to_owned(), b.stdout.trim().to_owned());
    for share in [&a, &b] {
        assert_eq!(
            share.len(),
            66,
            "a decrypted share is 33 bytes of hex: {share:?}"
        );
        assert!(share.bytes().all(|c| c.is_ascii_hexdigit()), "{share:?}");
    }
    assert_ne!(a, b);
    // The hex form of a share is not in the response (only its encryption is).
    assert!(
        !init.to_string().contains(&a),
        "plaintext share leaked in {init}"
    );

    // The decrypted shares unseal the server.
    assert_eq!(s.seal_status()["sealed"], true);
    s.unseal(&[&a, &b]);

    // The root token decrypts with alice's key and is a working root token.
    let root = alice
        .decrypt(&enc_root, &tmp.path().join("root.gpg"))
        .expect(0, "alice decrypts the root token")
        .stdout
        .trim()
        .to_owned();
    assert!(root.starts_with("hvs."), "decrypted root token {root:?}");
    let (code, me) = s.api("GET", "auth/token/lookup-self", None, Some(&root));
    assert_eq!(code, 200, "{me}");
    assert_eq!(me["data"]["policies"], serde_json::json!(["root"]), "{me}");
    let (code, mounts) = s.api("GET", "sys/mounts", None, Some(&root));
    assert_eq!(code, 200, "{mounts}");
}
