//! End to end: the whole seal lifecycle driven by the real `bao` CLI (OpenBao 2.7.2) against
//! `tresor server -config=...` on embedded storage, as a new operator would run it: init, unseal,
//! status, key-status, rotate, rekey, seal, unseal with the new keys, generate-root with an OTP,
//! and a final seal.

mod common;

use common::{Out, Server, clean_command, free_port, plain_config, run, strings};
use serde_json::Value;

/// The CLI under test: the `bao` CLI, or Tresor's own (`tresor status`, `tresor operator ...`),
/// with the same environment, so one test proves both.
struct Cli<'a> {
    s: &'a Server,
    tresor: bool,
}

impl Cli<'_> {
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        if !self.tresor {
            return self.s.bao_cmd(args);
        }
        let mut c = clean_command(env!("CARGO_BIN_EXE_tresor"));
        c.args(args)
            .current_dir(&self.s.dir)
            .env("HOME", &self.s.home)
            .env("VAULT_ADDR", &self.s.addr);
        c
    }
    fn bao(&self, args: &[&str]) -> Out {
        run(&mut self.cmd(args))
    }
    fn bao_as(&self, token: &str, args: &[&str]) -> Out {
        run(self.cmd(args).env("VAULT_TOKEN", token))
    }
}

fn status(c: &Cli) -> (i32, Value) {
    let o = c.bao(&["status", "-format=json"]);
    let v = o.json();
    (o.code, v)
}

/// The value of a row in bao's table output (`Key    Value`).
fn table_row(table: &str, key: &str) -> Option<String> {
    table.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?;
        if !rest.starts_with(' ') {
            return None;
        }
        Some(rest.trim().to_owned())
    })
}

#[test]
fn bao_drives_init_unseal_rotate_rekey_generate_root_and_seal() {
    lifecycle(false);
}

#[test]
fn tresor_cli_drives_the_same_lifecycle() {
    lifecycle(true);
}

fn lifecycle(tresor: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let s = Server::start(tmp.path(), port, &plain_config(port, ""));
    let c = Cli { s: &s, tresor };

    // Before init: `bao status` reports a sealed, uninitialized server with exit code 2.
    let o = c.bao(&["status"]).expect(2, "status before init");
    assert_eq!(
        table_row(&o.stdout, "Initialized").as_deref(),
        Some("false"),
        "{o}"
    );
    assert_eq!(
        table_row(&o.stdout, "Sealed").as_deref(),
        Some("true"),
        "{o}"
    );

    // Init with 5 shares, threshold 3.
    let init = c
        .bao(&[
            "operator",
            "init",
            "-key-shares=5",
            "-key-threshold=3",
            "-format=json",
        ])
        .expect(0, "operator init")
        .json();
    let old_b64 = strings(&init["unseal_keys_b64"]);
    let old_hex = strings(&init["unseal_keys_hex"]);
    assert_eq!(old_b64.len(), 5, "{init}");
    assert_eq!(old_hex.len(), 5, "{init}");
    assert!(
        old_hex.iter().all(|k| k.len() == 66),
        "33-byte shares: {init}"
    );
    assert_eq!(init["unseal_shares"], 5);
    assert_eq!(init["unseal_threshold"], 3);
    let root = init["root_token"].as_str().unwrap().to_owned();
    assert!(root.starts_with("hvs."), "root token {root}");

    // Still sealed after init; unseal progresses share by share (hex and base64 both work).
    let (code, st) = status(&c);
    assert_eq!(
        (code, &st["initialized"], &st["sealed"]),
        (2, &Value::Bool(true), &Value::Bool(true))
    );
    c.bao(&["operator", "unseal", &old_b64[0]])
        .expect(0, "unseal 1");
    let (_, st) = status(&c);
    assert_eq!(st["progress"], 1, "{st}");
    assert_eq!(st["sealed"], true);
    c.bao(&["operator", "unseal", &old_hex[1]])
        .expect(0, "unseal 2");
    c.bao(&["operator", "unseal", &old_b64[2]])
        .expect(0, "unseal 3");

    let (code, st) = status(&c);
    assert_eq!(code, 0, "status after unseal: {st}");
    assert_eq!(st["initialized"], true);
    assert_eq!(st["sealed"], false);
    assert_eq!(st["n"], 5, "Total Shares: {st}");
    assert_eq!(st["t"], 3, "Threshold: {st}");
    assert_eq!(st["progress"], 0);
    let o = c.bao(&["status"]).expect(0, "status table");
    assert_eq!(
        table_row(&o.stdout, "Total Shares").as_deref(),
        Some("5"),
        "{o}"
    );
    assert_eq!(
        table_row(&o.stdout, "Threshold").as_deref(),
        Some("3"),
        "{o}"
    );
    assert_eq!(
        table_row(&o.stdout, "Sealed").as_deref(),
        Some("false"),
        "{o}"
    );

    // Log in: the token lands in the isolated ~/.vault-token and later commands use it.
    c.bao(&["login", "-no-print", &root]).expect(0, "login");
    let helper = std::fs::read_to_string(s.home.join(".vault-token")).expect("token helper file");
    assert_eq!(helper.trim(), root);

    // Some data, to prove it survives rotate, rekey, seal and unseal.
    c.bao(&["secrets", "enable", "-version=2", "-path=secret", "kv"])
        .expect(0, "enable kv v2");
    c.bao(&["kv", "put", "secret/lifecycle", "colour=teal"])
        .expect(0, "kv put");

    // Key status, rotate, key status again.
    let ks = c
        .bao(&["operator", "key-status", "-format=json"])
        .expect(0, "key-status")
        .json();
    assert_eq!(ks["term"], 1, "{ks}");
    c.bao(&["operator", "rotate"]).expect(0, "rotate");
    let ks = c
        .bao(&["operator", "key-status", "-format=json"])
        .expect(0, "key-status")
        .json();
    assert_eq!(ks["term"], 2, "{ks}");

    // Rekey to 3 shares / threshold 2 with three of the old shares.
    let rk = c
        .bao(&[
            "operator",
            "rekey",
            "-init",
            "-key-shares=3",
            "-key-threshold=2",
            "-format=json",
        ])
        .expect(0, "rekey init")
        .json();
    assert_eq!(rk["started"], true, "{rk}");
    assert_eq!(
        (rk["n"].clone(), rk["t"].clone(), rk["required"].clone()),
        (3.into(), 2.into(), 3.into()),
        "{rk}"
    );
    let nonce = rk["nonce"].as_str().unwrap().to_owned();
    assert!(!nonce.is_empty());
    let mut last = Value::Null;
    for k in &old_b64[..3] {
        last = c
            .bao(&[
                "operator",
                "rekey",
                &format!("-nonce={nonce}"),
                "-format=json",
                k,
            ])
            .expect(0, "rekey update")
            .json();
    }
    assert_eq!(last["complete"], true, "{last}");
    let new_b64 = strings(&last["keys_base64"]);
    assert_eq!(new_b64.len(), 3, "{last}");
    assert!(
        new_b64.iter().all(|k| !old_b64.contains(k)),
        "rekey must make new shares"
    );

    // Seal; the CLI reports it and status turns to exit 2.
    c.bao(&["operator", "seal"]).expect(0, "seal");
    let (code, st) = status(&c);
    assert_eq!(
        (code, &st["sealed"], &st["t"], &st["n"]),
        (2, &Value::Bool(true), &2.into(), &3.into())
    );

    // An OLD share no longer opens it: new + old reaches the threshold and fails.
    c.bao(&["operator", "unseal", &new_b64[0]])
        .expect(0, "unseal new 1");
    let o = c.bao(&["operator", "unseal", &old_b64[0]]);
    assert_ne!(o.code, 0, "an old share must not unseal after rekey\n{o}");
    assert!(o.stderr.contains("invalid key"), "{o}");
    let (code, st) = status(&c);
    assert_eq!(
        (code, &st["sealed"], &st["progress"]),
        (2, &Value::Bool(true), &0.into()),
        "{st}"
    );
    // Two old shares alone do not either.
    c.bao(&["operator", "unseal", &old_b64[1]])
        .expect(0, "old share 1 (progress only)");
    let o = c.bao(&["operator", "unseal", &old_b64[2]]);
    assert_ne!(o.code, 0, "old shares must not unseal after rekey\n{o}");

    // Two NEW shares unseal.
    c.bao(&["operator", "unseal", &new_b64[1]])
        .expect(0, "unseal new 1");
    c.bao(&["operator", "unseal", &new_b64[2]])
        .expect(0, "unseal new 2");
    let (code, st) = status(&c);
    assert_eq!((code, &st["sealed"]), (0, &Value::Bool(false)), "{st}");
    let kv = c
        .bao(&["kv", "get", "-format=json", "secret/lifecycle"])
        .expect(0, "kv get")
        .json();
    assert_eq!(kv["data"]["data"]["colour"], "teal", "{kv}");

    // Generate a new root token with the OTP flow and two new shares.
    let gr = c
        .bao(&["operator", "generate-root", "-init", "-format=json"])
        .expect(0, "generate-root -init")
        .json();
    let otp = gr["otp"].as_str().unwrap_or_default().to_owned();
    let gnonce = gr["nonce"].as_str().unwrap_or_default().to_owned();
    assert_eq!(otp.len(), 28, "otp: {gr}");
    assert!(!gnonce.is_empty(), "nonce: {gr}");
    assert_eq!(gr["started"], true, "{gr}");
    let mut last = Value::Null;
    for k in &new_b64[..2] {
        last = c
            .bao(&[
                "operator",
                "generate-root",
                &format!("-nonce={gnonce}"),
                "-format=json",
                k,
            ])
            .expect(0, "generate-root update")
            .json();
    }
    assert_eq!(last["complete"], true, "{last}");
    let encoded = last["encoded_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!encoded.is_empty(), "{last}");
    let decoded = c
        .bao(&[
            "operator",
            "generate-root",
            &format!("-decode={encoded}"),
            &format!("-otp={otp}"),
            "-format=json",
        ])
        .expect(0, "generate-root -decode");
    let new_root = match serde_json::from_str::<Value>(&decoded.stdout) {
        Ok(v) => v["token"].as_str().unwrap_or_default().to_owned(),
        Err(_) => decoded.stdout.trim().to_owned(),
    };
    assert!(new_root.starts_with("hvs."), "decoded token: {decoded}");
    assert_ne!(new_root, root);
    let lk = c
        .bao_as(&new_root, &["token", "lookup", "-format=json"])
        .expect(0, "token lookup with generated root")
        .json();
    assert_eq!(lk["data"]["policies"], serde_json::json!(["root"]), "{lk}");
    assert_eq!(lk["data"]["id"], new_root.as_str());

    // Seal again: requests now get 503.
    c.bao_as(&new_root, &["operator", "seal"])
        .expect(0, "final seal");
    let (code, st) = status(&c);
    assert_eq!((code, &st["sealed"]), (2, &Value::Bool(true)));
    let (code, body) = s.api("GET", "secret/data/lifecycle", None, Some(&new_root));
    assert_eq!(code, 503, "{body}");
    assert!(
        common::errors(&body).iter().any(|e| e.contains("sealed")),
        "{body}"
    );
    let o = c.bao(&["kv", "get", "secret/lifecycle"]);
    assert_ne!(o.code, 0, "kv get on a sealed server must fail\n{o}");
}
