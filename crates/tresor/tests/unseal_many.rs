//! End to end: one operator command unseals several servers. Three servers hold the same
//! barrier (the second and third restored from the first one's snapshot while uninitialised),
//! initialised with `pgp_keys` for three operators and a threshold of two. Alice runs
//! `tresor operator unseal -address=A -address=B -address=C -pgp-share=FILE` with the share
//! init printed for her; Bob pipes `gpg -d` into `-pgp-share=-`. After the two of them every
//! server is unsealed and serves the same secret. A server that cannot be reached is a row
//! with an error and exit code 2; a share gpg cannot open (the wrong operator's) fails before
//! anything is sent.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::gpg::Keyring;
use common::{Out, Server, clean_command, free_port, plain_config, run_for, strings};
use serde_json::json;

/// `tresor ARGS` as operator `who` (their GNUPGHOME), no token, stdin `input`.
fn tresor_as(who: &Keyring, dir: &Path, args: &[&str], input: Option<&[u8]>) -> Out {
    let mut c: Command = clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GNUPGHOME", who.home());
    run_for(&mut c, input, Duration::from_secs(60))
}

fn tresor(s: &Server, token: Option<&str>, args: &[&str]) -> Out {
    let mut c: Command = clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.args(args)
        .current_dir(&s.dir)
        .env("HOME", &s.home)
        .env("VAULT_ADDR", &s.addr);
    if let Some(t) = token {
        c.env("VAULT_TOKEN", t);
    }
    run_for(&mut c, None, Duration::from_secs(60))
}

/// The table row for `addr` in the unseal command's output.
fn row<'a>(out: &'a str, addr: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(addr))
        .unwrap_or_else(|| panic!("no row for {addr} in\n{out}"))
}

#[test]
fn one_command_unseals_every_server_with_a_pgp_share() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<_> = (0..3)
        .map(|i| {
            let d = tmp.path().join(format!("s{i}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .collect();
    let ops = tmp.path().join("ops");
    std::fs::create_dir_all(&ops).unwrap();
    let alice = Keyring::new(&ops, "alice");
    let bob = Keyring::new(&ops, "bob");
    let carol = Keyring::new(&ops, "carol");

    // Server A: initialised for three operators, threshold two; unsealed once by hand to
    // write a secret and take the snapshot the other two are restored from.
    let port_a = free_port();
    let a = Server::start(&dirs[0], port_a, &plain_config(port_a, ""));
    let body = json!({
        "secret_shares": 3,
        "secret_threshold": 2,
        "pgp_keys": [alice.public_b64(), bob.public_b64(), carol.public_b64()],
    });
    let (code, init) = a.api("PUT", "sys/init", Some(&body.to_string()), None);
    assert_eq!(code, 200, "{init}");
    let shares = strings(&init["keys_base64"]);
    let root = init["root_token"].as_str().unwrap().to_owned();
    let open = |k: &Keyring, i: usize| {
        k.decrypt(&shares[i], &ops.join(format!("tmp{i}.gpg")))
            .expect(0, "gpg --decrypt")
            .stdout
            .trim()
            .to_owned()
    };
    let (sa, sb) = (open(&alice, 0), open(&bob, 1));
    a.unseal(&[&sa, &sb]);
    let (code, v) = a.api(
        "PUT",
        "sys/mounts/secret",
        Some(r#"{"type":"kv","options":{"version":"2"}}"#),
        Some(&root),
    );
    assert!(code == 204 || code == 200, "{v}");
    let (code, v) = a.api(
        "POST",
        "secret/data/app",
        Some(r#"{"data":{"password":"same-everywhere"}}"#),
        Some(&root),
    );
    assert_eq!(code, 200, "{v}");
    tresor(
        &a,
        Some(&root),
        &["operator", "snapshot", "save", "snap.bin"],
    )
    .expect(0, "snapshot save");
    let snap = a.dir.join("snap.bin");

    let mut servers = vec![a];
    for d in &dirs[1..] {
        let port = free_port();
        let s = Server::start(d, port, &plain_config(port, ""));
        std::fs::copy(&snap, s.dir.join("snap.bin")).unwrap();
        tresor(&s, None, &["operator", "snapshot", "restore", "snap.bin"])
            .expect(0, "restore into an uninitialised server");
        servers.push(s);
    }
    tresor(&servers[0], Some(&root), &["operator", "seal"]).expect(0, "seal A");
    for s in &servers {
        assert_eq!(s.seal_status()["sealed"], true, "{}", s.addr);
    }
    let addr_flags: Vec<String> = servers
        .iter()
        .map(|s| format!("-address={}", s.addr))
        .collect();

    // Carol cannot open Alice's share: gpg fails, nothing is sent.
    std::fs::write(ops.join("alice.share"), &shares[0]).unwrap();
    let mut args: Vec<&str> = vec!["operator", "unseal"];
    args.extend(addr_flags.iter().map(String::as_str));
    args.push("-pgp-share=alice.share");
    let out = tresor_as(&carol, &ops, &args, None);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("gpg could not decrypt"), "{out}");
    for s in &servers {
        assert_eq!(s.seal_status()["progress"], 0, "{}", s.addr);
    }

    // Alice, with one more address nobody listens on: three rows at 1/2, one error row, exit 2.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut with_dead = args.clone();
    let dead_flag = format!("-address={dead}");
    with_dead.insert(2, &dead_flag);
    let out = tresor_as(&alice, &ops, &with_dead, None);
    assert_eq!(out.code, 2, "{out}");
    for s in &servers {
        let r = row(&out.stdout, &s.addr);
        assert!(r.contains("true") && r.contains("1/2"), "{r}\n{out}");
        assert_eq!(s.seal_status()["progress"], 1, "{}", s.addr);
    }
    assert!(
        !row(&out.stdout, &dead).trim_end().ends_with(&dead),
        "{out}"
    );
    // The decrypted share is never printed.
    assert!(
        !out.stdout.contains(&sa) && !out.stderr.contains(&sa),
        "{out}"
    );

    // Bob: `base64 -d share | gpg -d | tresor operator unseal ... -pgp-share=-`.
    let plain = bob
        .decrypt(&shares[1], &ops.join("bob.gpg"))
        .expect(0, "bob decrypts")
        .stdout;
    let mut args: Vec<&str> = vec!["operator", "unseal"];
    args.extend(addr_flags.iter().map(String::as_str));
    args.push("-pgp-share=-");
    let out = tresor_as(&bob, &ops, &args, Some(plain.as_bytes()));
    assert_eq!(out.code, 0, "{out}");
    for s in &servers {
        assert!(row(&out.stdout, &s.addr).contains("unsealed"), "{out}");
        assert_eq!(s.seal_status()["sealed"], false, "{}", s.addr);
        let (code, v) = s.api("GET", "secret/data/app", None, Some(&root));
        assert_eq!(code, 200, "{}: {v}", s.addr);
        assert_eq!(v["data"]["data"]["password"], "same-everywhere", "{v}");
    }

    // -reset applies to every server too, and -format=json lists each one.
    for s in &servers[..2] {
        tresor(s, Some(&root), &["operator", "seal"]).expect(0, "seal again");
    }
    let out = tresor_as(
        &carol,
        &ops,
        &[
            "operator",
            "unseal",
            &addr_flags[0],
            &addr_flags[0],
            "-pgp-share",
            "carol.share",
        ],
        None,
    );
    assert_ne!(out.code, 0, "a missing file is an error: {out}");
    std::fs::write(ops.join("carol.share"), &shares[2]).unwrap();
    let out = tresor_as(
        &carol,
        &ops,
        &[
            "operator",
            "unseal",
            "-format=json",
            &addr_flags[0],
            "-pgp-share=carol.share",
        ],
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    let v = out.json();
    assert_eq!(v[0]["address"], servers[0].addr.as_str(), "{v}");
    assert_eq!(v[0]["status"]["progress"], 1, "{v}");
    let out = tresor_as(
        &carol,
        &ops,
        &[
            "operator",
            "unseal",
            "-reset",
            &addr_flags[0],
            &addr_flags[1],
        ],
        None,
    );
    assert_eq!(out.code, 0, "{out}");
    assert!(row(&out.stdout, &servers[0].addr).contains("0/2"), "{out}");
    assert_eq!(servers[0].seal_status()["progress"], 0);
    // An unsealed server refuses a reset (Vault's 400 `vault is unsealed`): its row says so.
    let out = tresor_as(
        &carol,
        &ops,
        &[
            "operator",
            "unseal",
            "-reset",
            &addr_flags[1],
            &addr_flags[2],
        ],
        None,
    );
    assert_eq!(out.code, 2, "{out}");
    assert!(
        row(&out.stdout, &servers[2].addr).contains("vault is unsealed"),
        "{out}"
    );
}
