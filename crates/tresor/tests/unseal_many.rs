//! End to end (issue 17): one operator command unseals every server of a HA cluster. Three
//! servers on one etcd cluster (three members) share one barrier, initialised once with
//! `pgp_keys` for three operators and a threshold of two. Alice runs `tresor operator unseal
//! -address=A -address=B -address=C -pgp-share=FILE` with the share init printed for her; Bob
//! pipes `gpg -d` into `-pgp-share=-`. After the two of them every server is unsealed (one
//! active, two standbys) and serves the same secret. A server that cannot be reached is a row
//! with an error and exit code 2; a share gpg cannot open (the wrong operator's) fails before
//! anything is sent; `-reset` resets every server.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::gpg::Keyring;
use common::{Out, Server, clean_command, free_port, run_for, strings};
use serde_json::json;
use tresor_physical::testing::EtcdCluster;

fn ha_config(port: u16, etcd: &str) -> String {
    format!(
        "storage \"etcd\" {{\n  address = \"{etcd}\"\n  path = \"/unseal-many/\"\n  ha_enabled = \"true\"\n}}\n\nlistener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\napi_addr = \"http://127.0.0.1:{port}\"\ndisable_mlock = true\n"
    )
}

/// `tresor ARGS` as operator `who` (their GNUPGHOME), no token, stdin `input`.
fn tresor_as(who: &Keyring, dir: &Path, args: &[&str], input: Option<&[u8]>) -> Out {
    let mut c: Command = clean_command(env!("CARGO_BIN_EXE_tresor"));
    c.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GNUPGHOME", who.home());
    run_for(&mut c, input, Duration::from_secs(60))
}

/// The table row for `addr` in the unseal command's output.
fn row<'a>(out: &'a str, addr: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(addr))
        .unwrap_or_else(|| panic!("no row for {addr} in\n{out}"))
}

#[test]
fn one_command_unseals_every_server_with_a_pgp_share() {
    let etcd = EtcdCluster::start(3).expect("etcd cluster");
    let tmp = tempfile::tempdir().unwrap();
    let ops = tmp.path().join("ops");
    std::fs::create_dir_all(&ops).unwrap();
    let alice = Keyring::new(&ops, "alice");
    let bob = Keyring::new(&ops, "bob");
    let carol = Keyring::new(&ops, "carol");
    let servers: Vec<Server> = (0..3)
        .map(|i| {
            let d = tmp.path().join(format!("s{i}"));
            std::fs::create_dir_all(&d).unwrap();
            let port = free_port();
            Server::start(&d, port, &ha_config(port, &etcd.address()))
        })
        .collect();

    // One init, for three operators, threshold two: every server is initialised and sealed.
    let body = json!({
        "secret_shares": 3,
        "secret_threshold": 2,
        "pgp_keys": [alice.public_b64(), bob.public_b64(), carol.public_b64()],
    });
    let (code, init) = servers[0].api("PUT", "sys/init", Some(&body.to_string()), None);
    assert_eq!(code, 200, "{init}");
    let shares = strings(&init["keys_base64"]);
    let root = init["root_token"].as_str().unwrap().to_owned();
    for s in &servers {
        let st = s.seal_status();
        assert_eq!(
            (st["initialized"].as_bool(), st["sealed"].as_bool()),
            (Some(true), Some(true)),
            "{}: {st}",
            s.addr
        );
    }
    let addr_flags: Vec<String> = servers
        .iter()
        .map(|s| format!("-address={}", s.addr))
        .collect();
    let unseal_args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec!["operator".into(), "unseal".into()];
        a.extend(addr_flags.iter().cloned());
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let as_strs = |v: &[String]| v.iter().map(String::clone).collect::<Vec<_>>();

    // Carol cannot open Alice's share: gpg fails, nothing is sent.
    std::fs::write(ops.join("alice.share"), &shares[0]).unwrap();
    let args = as_strs(&unseal_args(&["-pgp-share=alice.share"]));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tresor_as(&carol, &ops, &argv, None);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("gpg could not decrypt"), "{out}");
    for s in &servers {
        assert_eq!(s.seal_status()["progress"], 0, "{}", s.addr);
    }

    // Alice, with one more address nobody listens on: three rows at 1/2, one error row, exit 2.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut with_dead = argv.clone();
    let dead_flag = format!("-address={dead}");
    with_dead.insert(2, &dead_flag);
    let alice_plain = alice
        .decrypt(&shares[0], &ops.join("a.gpg"))
        .expect(0, "alice decrypts")
        .stdout
        .trim()
        .to_owned();
    let argv_alice: Vec<&str> = with_dead
        .iter()
        .map(|a| {
            if a.starts_with("-pgp-share") {
                "-pgp-share=alice.share"
            } else {
                a
            }
        })
        .collect();
    let out = tresor_as(&alice, &ops, &argv_alice, None);
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
        !out.stdout.contains(&alice_plain) && !out.stderr.contains(&alice_plain),
        "{out}"
    );

    // -reset resets every server; Alice again, asking for JSON.
    let args = as_strs(&unseal_args(&["-reset"]));
    let argv_reset: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tresor_as(&carol, &ops, &argv_reset, None);
    assert_eq!(out.code, 0, "{out}");
    for s in &servers {
        assert!(row(&out.stdout, &s.addr).contains("0/2"), "{out}");
        assert_eq!(s.seal_status()["progress"], 0, "{}", s.addr);
    }
    let args = as_strs(&unseal_args(&["-format=json", "-pgp-share", "alice.share"]));
    let argv_json: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tresor_as(&alice, &ops, &argv_json, None);
    assert_eq!(out.code, 0, "{out}");
    let v = out.json();
    for (i, s) in servers.iter().enumerate() {
        assert_eq!(v[i]["address"], s.addr.as_str(), "{v}");
        assert_eq!(v[i]["status"]["progress"], 1, "{v}");
    }

    // Bob: `base64 -d share | gpg -d | tresor operator unseal ... -pgp-share=-`.
    let plain = bob
        .decrypt(&shares[1], &ops.join("bob.gpg"))
        .expect(0, "bob decrypts")
        .stdout;
    let args = as_strs(&unseal_args(&["-pgp-share=-"]));
    let argv_bob: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = tresor_as(&bob, &ops, &argv_bob, Some(plain.as_bytes()));
    assert_eq!(out.code, 0, "{out}");
    for s in &servers {
        assert!(row(&out.stdout, &s.addr).contains("unsealed"), "{out}");
        assert_eq!(s.seal_status()["sealed"], false, "{}", s.addr);
    }
    // One active and two standbys, serving the same secret.
    let deadline = Instant::now() + Duration::from_secs(20);
    let active = loop {
        let actives: Vec<usize> = (0..3)
            .filter(|&i| servers[i].api("GET", "sys/leader", None, None).1["is_self"] == true)
            .collect();
        if actives.len() == 1 {
            break actives[0];
        }
        assert!(
            Instant::now() < deadline,
            "no single active node: {actives:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (code, v) = servers[active].api(
        "POST",
        "sys/mounts/secret",
        Some(r#"{"type":"kv","options":{"version":"2"}}"#),
        Some(&root),
    );
    assert!(code == 204 || code == 200, "{v}");
    let (code, v) = servers[active].api(
        "POST",
        "secret/data/app",
        Some(r#"{"data":{"password":"same-everywhere"}}"#),
        Some(&root),
    );
    assert_eq!(code, 200, "{v}");
    for s in &servers {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (code, v) = s.api("GET", "secret/data/app", None, Some(&root));
            if code == 200 {
                assert_eq!(v["data"]["data"]["password"], "same-everywhere", "{v}");
                break;
            }
            assert!(Instant::now() < deadline, "{}: {code} {v}", s.addr);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    // An unsealed server refuses a reset (Vault's 400 `vault is unsealed`): its row says so.
    let out = tresor_as(&carol, &ops, &argv_reset, None);
    assert_eq!(out.code, 2, "{out}");
    assert!(
        row(&out.stdout, &servers[2].addr).contains("vault is unsealed"),
        "{out}"
    );
}
