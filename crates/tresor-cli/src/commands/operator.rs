//! `operator ...`: the seal lifecycle. `init`, `unseal`, `seal`, `rekey`, `generate-root`,
//! `rotate`, `key-status`.
//!
//! Unseal keys and OTPs read from stdin are held in zeroizing buffers. PGP public keys for
//! `-pgp-keys` / `-pgp-key` are files holding either base64 text or a binary key, which is
//! base64-encoded before it is sent.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use rand_core::{OsRng, RngCore};
use serde_json::{Map, Value, json};
use tresor_client::Method;
use zeroize::Zeroizing;

use super::{Cli, CliError, CmdResult, Usage, max_args, remote};
use crate::client::{Client, Request};
use crate::flags::{Kind, Parsed, flag};
use crate::format;

/// Why a PGP key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PgpKeyError {
    /// Keybase lookups need the network and a third-party service.
    #[error("keybase keys are not supported: {0}")]
    Keybase(String),
    /// The file could not be read.
    #[error("error reading {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The file is empty.
    #[error("{0} is empty")]
    Empty(String),
}

/// Reads one PGP public key file: base64 text is used as is (whitespace removed), anything
/// else is taken as a binary key and base64-encoded.
pub fn read_pgp_key(path: &str) -> Result<String, PgpKeyError> {
    let path = path.trim();
    if path.starts_with("keybase:") {
        return Err(PgpKeyError::Keybase(path.to_string()));
    }
    let bytes = std::fs::read(path).map_err(|e| PgpKeyError::Read {
        path: path.to_string(),
        reason: e.to_string(),
    })?;
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if text.is_empty() {
        return Err(PgpKeyError::Empty(path.to_string()));
    }
    if STANDARD.decode(&text).is_ok() {
        return Ok(text);
    }
    Ok(STANDARD.encode(&bytes))
}

/// Reads a comma-separated list of PGP key files.
pub fn read_pgp_keys(list: &str) -> Result<Vec<String>, PgpKeyError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(read_pgp_key)
        .collect()
}

fn pgp_list(p: &Parsed, name: &str) -> Result<Option<Vec<String>>, CliError> {
    match p.str(name) {
        None => Ok(None),
        Some(list) => read_pgp_keys(list)
            .map(Some)
            .map_err(|e| CliError::Usage(format!("invalid value for -{name}: {e}"))),
    }
}

fn int_of(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn bool_of(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn strs_of(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a key from the argument, stdin (`-`) or a prompt.
fn key_input(
    cli: &mut Cli<'_, '_>,
    arg: Option<&String>,
    prompt: &str,
) -> Result<Zeroizing<String>, CliError> {
    let key = match arg.map(|s| s.trim()) {
        Some("-") => Zeroizing::new(cli.read_stdin()?.trim().to_string()),
        Some(k) => Zeroizing::new(k.to_string()),
        None => cli
            .prompt_line(prompt)?
            .ok_or_else(|| CliError::Local("Error reading unseal key: no input".to_string()))?,
    };
    if key.is_empty() {
        return Err(CliError::Usage("Missing unseal key".to_string()));
    }
    Ok(key)
}

// ---- init ----

const INIT: Usage = Usage {
    text: "Usage: tresor operator init [options]

  Initializes a new server: generates the root key, splits it into unseal key shares and
  creates the initial root token. The server stays sealed afterwards.
  With -status, exits 0 when initialized, 2 when not, 1 on error.",
    flags: &[
        flag(
            "key-shares",
            Kind::Int,
            "Number of unseal key shares (default 5).",
        ),
        flag(
            "key-threshold",
            Kind::Int,
            "Shares needed to unseal (default 3).",
        ),
        flag(
            "pgp-keys",
            Kind::Str,
            "Comma-separated files of PGP public keys (base64 or binary), one per share.",
        ),
        flag(
            "root-token-pgp-key",
            Kind::Str,
            "File of a PGP public key to encrypt the root token with.",
        ),
        flag(
            "stored-shares",
            Kind::Int,
            "Shares stored by an auto-unseal seal.",
        ),
        flag(
            "recovery-shares",
            Kind::Int,
            "Recovery key shares (auto-unseal only).",
        ),
        flag(
            "recovery-threshold",
            Kind::Int,
            "Recovery key threshold (auto-unseal only).",
        ),
        flag(
            "recovery-pgp-keys",
            Kind::Str,
            "PGP key files for the recovery shares.",
        ),
        flag(
            "status",
            Kind::Bool,
            "Only report whether the server is initialized.",
        ),
    ],
};

/// The body `operator init` sends.
pub fn init_body(p: &Parsed) -> Result<Value, CliError> {
    let root_pgp = match p.str("root-token-pgp-key") {
        None => String::new(),
        Some(path) => read_pgp_key(path)
            .map_err(|e| CliError::Usage(format!("invalid value for -root-token-pgp-key: {e}")))?,
    };
    Ok(json!({
        "secret_shares": p.int("key-shares").unwrap_or(5),
        "secret_threshold": p.int("key-threshold").unwrap_or(3),
        "stored_shares": p.int("stored-shares").unwrap_or(0),
        "pgp_keys": pgp_list(p, "pgp-keys")?,
        "recovery_shares": p.int("recovery-shares").unwrap_or(0),
        "recovery_threshold": p.int("recovery-threshold").unwrap_or(0),
        "recovery_pgp_keys": pgp_list(p, "recovery-pgp-keys")?,
        "root_token_pgp_key": root_pgp,
    }))
}

/// What `operator init` prints for a successful response.
pub fn init_output(resp: &Value, shares: i64, threshold: i64) -> (String, Value) {
    let b64 = strs_of(resp, "keys_base64");
    let hex = strs_of(resp, "keys");
    let rb64 = strs_of(resp, "recovery_keys_base64");
    let rhex = strs_of(resp, "recovery_keys");
    let root = str_of(resp, "root_token");
    let mut text = String::new();
    let shown = if b64.is_empty() { &hex } else { &b64 };
    for (i, k) in shown.iter().enumerate() {
        text.push_str(&format!("Unseal Key {}: {k}\n", i + 1));
    }
    let rshown = if rb64.is_empty() { &rhex } else { &rb64 };
    for (i, k) in rshown.iter().enumerate() {
        text.push_str(&format!("Recovery Key {}: {k}\n", i + 1));
    }
    text.push_str(&format!("\nInitial Root Token: {root}\n\n"));
    if shown.is_empty() {
        text.push_str(
            "Initialized with an auto-unseal seal: no unseal keys are needed to start the server.\n",
        );
    } else {
        text.push_str(&format!(
            "Initialized with {shares} key shares and a key threshold of {threshold}. Hand the\n\
             shares printed above to different trusted people. Whenever the server restarts or is\n\
             sealed, {threshold} of them must be entered (tresor operator unseal) before it serves\n\
             requests again.\n\n\
             The root key itself is not stored anywhere: if fewer than {threshold} shares survive,\n\
             the data can never be unsealed. A quorum of the current shares can make new ones with\n\
             \"tresor operator rekey\".\n"
        ));
    }
    let json = json!({
        "unseal_keys_b64": b64,
        "unseal_keys_hex": hex,
        "unseal_shares": shares,
        "unseal_threshold": threshold,
        "recovery_keys_b64": rb64,
        "recovery_keys_hex": rhex,
        "recovery_keys_shares": if rshown.is_empty() { 0 } else { rshown.len() as i64 },
        "recovery_keys_threshold": 0,
        "root_token": root,
    });
    (text, json)
}

/// `tresor operator init`.
pub fn init(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&INIT, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    if p.bool("status") {
        let v = client
            .json(&Request::new(Method::GET, "sys/init").no_wrap())
            .map_err(|e| CliError::Local(format!("Error checking init status: {e}")))?;
        if bool_of(&v, "initialized") {
            cli.outln("Server is initialized");
            return Ok(0);
        }
        cli.errln("Server is not initialized");
        return Ok(2);
    }
    let body = init_body(&p)?;
    let resp = client
        .json(
            &Request::new(Method::PUT, "sys/init")
                .json(body.clone())
                .no_wrap(),
        )
        .map_err(|e| remote("initializing", e))?;
    let (text, json) = init_output(
        &resp,
        int_of(&body, "secret_shares"),
        int_of(&body, "secret_threshold"),
    );
    if cli.is_table() {
        cli.out(&text);
        Ok(0)
    } else {
        cli.print_struct(&json)
    }
}

// ---- unseal / seal ----

const UNSEAL: Usage = Usage {
    text: "Usage: tresor operator unseal [options] [KEY]

  Provides one unseal key share. Without KEY it is read from stdin (prompted). Once enough
  shares are in, the server unseals.

  Several servers at once: give -address once per server (servers sharing one storage, or
  restored from one snapshot, have the same shares). The share is sent to every server in
  parallel and a table shows each server's progress; the exit code is 2 if any server could
  not take it.

  -pgp-share=FILE (or - for stdin) takes the share as init printed it for a PGP key
  (base64, ASCII-armored or binary OpenPGP) and opens it with the local gpg, piping it
  through memory only; a share already decrypted (gpg -d | tresor operator unseal
  -pgp-share=-) is used as it is.",
    flags: &[
        flag("reset", Kind::Bool, "Discard the shares entered so far."),
        flag(
            "migrate",
            Kind::Bool,
            "Mark the share as part of a seal migration.",
        ),
        flag(
            "pgp-share",
            Kind::Str,
            "File with this operator's PGP-encrypted share (- for stdin), opened with gpg.",
        ),
    ],
};

/// `tresor operator unseal`.
pub fn unseal(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&UNSEAL, args)?;
    max_args(&p.args, 1)?;
    if p.all("address").len() > 1 || p.is_set("pgp-share") {
        return unseal_many(cli, &p);
    }
    let client = cli.client(&p)?;
    let body = if p.bool("reset") {
        json!({ "reset": true })
    } else {
        let key = key_input(cli, p.args.first(), "Unseal Key (will be hidden): ")?;
        let mut b = json!({ "key": key.as_str() });
        if p.bool("migrate") {
            b["migrate"] = json!(true);
        }
        b
    };
    let status = client
        .json(&Request::new(Method::PUT, "sys/unseal").json(body).no_wrap())
        .map_err(|e| remote("unsealing", e))?;
    super::status::print_seal_status(cli, &client, &status)?;
    Ok(0)
}

/// `tresor operator unseal` with several `-address` flags or `-pgp-share`: one share, every
/// server, in parallel.
fn unseal_many(cli: &mut Cli<'_, '_>, p: &Parsed) -> CmdResult {
    let body = if p.bool("reset") {
        json!({ "reset": true })
    } else {
        let key = match p.str("pgp-share") {
            Some(src) => {
                if !p.args.is_empty() {
                    return Err(CliError::Usage(
                        "give the share either as KEY or with -pgp-share, not both".into(),
                    ));
                }
                pgp_share(cli, src)?
            }
            None => key_input(cli, p.args.first(), "Unseal Key (will be hidden): ")?,
        };
        let mut b = json!({ "key": key.as_str() });
        if p.bool("migrate") {
            b["migrate"] = json!(true);
        }
        b
    };
    let cfg = crate::client::config(cli.ctx.env, p).map_err(|e| CliError::Local(e.to_string()))?;
    let mut addresses = p.all("address");
    if addresses.is_empty() {
        addresses.push(cfg.address.clone());
    }
    addresses.dedup();
    let results: Vec<Result<Value, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = addresses
            .iter()
            .map(|addr| {
                let mut cfg = cfg.clone();
                cfg.address = addr.clone();
                let body = &body;
                scope.spawn(move || {
                    let client = Client::new(cfg).map_err(|e| e.to_string())?;
                    client
                        .json(
                            &Request::new(Method::PUT, "sys/unseal")
                                .json(body.clone())
                                .no_wrap(),
                        )
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("unseal thread panicked".into()))
            })
            .collect()
    });
    let failed = results.iter().any(Result::is_err);
    if cli.is_table() {
        let rows: Vec<Vec<String>> = addresses
            .iter()
            .zip(&results)
            .map(|(addr, r)| match r {
                Ok(st) => {
                    let sealed = st.get("sealed").and_then(Value::as_bool).unwrap_or(true);
                    let progress = if sealed {
                        format!(
                            "{}/{}",
                            st.get("progress").and_then(Value::as_i64).unwrap_or(0),
                            st.get("t").and_then(Value::as_i64).unwrap_or(0)
                        )
                    } else {
                        "unsealed".into()
                    };
                    vec![addr.clone(), sealed.to_string(), progress, String::new()]
                }
                Err(e) => vec![addr.clone(), "?".into(), String::new(), one_line(e)],
            })
            .collect();
        cli.out(&format::table(
            &["Address", "Sealed", "Progress", "Error"],
            &rows,
        ));
    } else {
        let list: Vec<Value> = addresses
            .iter()
            .zip(&results)
            .map(|(addr, r)| match r {
                Ok(st) => json!({ "address": addr, "status": st }),
                Err(e) => json!({ "address": addr, "error": e }),
            })
            .collect();
        cli.print_struct(&Value::Array(list))?;
    }
    Ok(if failed { 2 } else { 0 })
}

/// A client error on one table line: the status and the server's errors, or the cause.
fn one_line(e: &str) -> String {
    e.lines()
        .map(str::trim)
        .map(|l| l.trim_start_matches("* "))
        .filter(|l| !l.is_empty() && !l.starts_with("URL:") && *l != "Error making API request.")
        .collect::<Vec<_>>()
        .join(" ")
}

/// The unseal share in `src` (a file, or `-` for stdin): opened with the local `gpg` when it
/// is an OpenPGP message (base64 as init prints it, ASCII armor, or binary), taken as it is
/// when it is already a plain share. The plaintext only ever lives in this process's memory.
fn pgp_share(cli: &mut Cli<'_, '_>, src: &str) -> Result<Zeroizing<String>, CliError> {
    let input: Zeroizing<Vec<u8>> = if src == "-" {
        Zeroizing::new(cli.read_stdin()?.as_bytes().to_vec())
    } else {
        Zeroizing::new(
            std::fs::read(src)
                .map_err(|e| CliError::Local(format!("error reading the PGP share {src}: {e}")))?,
        )
    };
    let text = std::str::from_utf8(&input).ok().map(str::trim);
    let message: Vec<u8> = match text {
        Some("") => {
            return Err(CliError::Usage(format!("the PGP share in {src} is empty")));
        }
        Some(t) if t.starts_with("-----BEGIN PGP MESSAGE-----") => t.as_bytes().to_vec(),
        Some(t) if is_plain_share(t) => return Ok(Zeroizing::new(t.to_string())),
        Some(t) => STANDARD
            .decode(t.split_whitespace().collect::<String>())
            .map_err(|_| {
                CliError::Usage(format!(
                    "{src} holds neither a PGP message (base64, armored or binary) nor a share"
                ))
            })?,
        None => input.to_vec(),
    };
    let share = gpg_decrypt(&message)?;
    let share = Zeroizing::new(
        std::str::from_utf8(&share)
            .map_err(|_| CliError::Local("gpg's output is not a share (not text)".into()))?
            .trim()
            .to_string(),
    );
    if !is_plain_share(&share) {
        return Err(CliError::Local(
            "gpg's output is not an unseal share (expected hex or base64)".into(),
        ));
    }
    Ok(share)
}

/// A share as init prints it: hex, or base64 of at most 64 bytes (an OpenPGP message is
/// longer).
fn is_plain_share(t: &str) -> bool {
    (!t.is_empty() && t.len() <= 130 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        || STANDARD
            .decode(t)
            .is_ok_and(|b| !b.is_empty() && b.len() <= 64)
}

/// `gpg --decrypt` with the message on its stdin and the plaintext read from its stdout;
/// gpg talks to the operator (passphrase prompts, messages) on the terminal itself.
fn gpg_decrypt(message: &[u8]) -> Result<Zeroizing<Vec<u8>>, CliError> {
    use std::io::{Read as _, Write as _};
    use std::process::{Command, Stdio};
    let mut child = Command::new("gpg")
        .args(["--quiet", "--decrypt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| CliError::Local(format!("cannot run gpg to open the PGP share: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let message = message.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&message);
    });
    let mut out = Zeroizing::new(Vec::new());
    let read = child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_end(&mut out);
    let _ = writer.join();
    let status = child
        .wait()
        .map_err(|e| CliError::Local(format!("gpg: {e}")))?;
    if read.is_err() || !status.success() {
        return Err(CliError::Local(format!(
            "gpg could not decrypt the PGP share ({status})"
        )));
    }
    Ok(out)
}

const SEAL: Usage = Usage {
    text: "Usage: tresor operator seal [options]

  Seals the server: it forgets its keys and serves nothing until unsealed again. Needs a
  token with sudo on sys/seal.",
    flags: &[],
};

/// `tresor operator seal`.
pub fn seal(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&SEAL, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    client
        .call(&Request::new(Method::PUT, "sys/seal").no_wrap())
        .map_err(|e| remote("sealing", e))?;
    cli.outln("Success! Server is sealed.");
    Ok(0)
}

// ---- rekey ----

const REKEY: Usage = Usage {
    text: "Usage: tresor operator rekey [options] [KEY]

  Replaces the unseal key shares. Start with -init (choosing -key-shares and
  -key-threshold), then enter a quorum of current shares one by one; the last one returns
  the new shares. -verify makes the holders prove the new shares before they take effect.",
    flags: &[
        flag("init", Kind::Bool, "Start a rekey."),
        flag("cancel", Kind::Bool, "Cancel the rekey in progress."),
        flag("status", Kind::Bool, "Show the rekey progress."),
        flag("key-shares", Kind::Int, "Number of new shares (default 5)."),
        flag("key-threshold", Kind::Int, "New threshold (default 3)."),
        flag(
            "nonce",
            Kind::Str,
            "Nonce of the rekey (default: the one in progress).",
        ),
        flag(
            "pgp-keys",
            Kind::Str,
            "Comma-separated PGP key files for the new shares.",
        ),
        flag(
            "backup",
            Kind::Bool,
            "Store the PGP-encrypted new shares on the server.",
        ),
        flag(
            "verify",
            Kind::Bool,
            "With -init: require verification. Otherwise: enter a new share to verify it.",
        ),
        flag(
            "backup-retrieve",
            Kind::Bool,
            "Print the backed-up encrypted shares.",
        ),
        flag(
            "backup-delete",
            Kind::Bool,
            "Delete the backed-up encrypted shares.",
        ),
    ],
};

/// The rows of the rekey status table.
pub fn rekey_status_rows(s: &Value) -> Vec<(String, String)> {
    let mut rows = vec![
        ("Nonce".to_string(), str_of(s, "nonce")),
        ("Started".to_string(), bool_of(s, "started").to_string()),
    ];
    if bool_of(s, "started") {
        let (progress, required) = (int_of(s, "progress"), int_of(s, "required"));
        let mut prog = format!("{progress}/{required}");
        if required > 0 && progress == required {
            prog.push_str(" (verification in progress)");
        }
        rows.push(("Rekey Progress".to_string(), prog));
        rows.push(("New Shares".to_string(), int_of(s, "n").to_string()));
        rows.push(("New Threshold".to_string(), int_of(s, "t").to_string()));
        rows.push((
            "Verification Required".to_string(),
            bool_of(s, "verification_required").to_string(),
        ));
        let vn = str_of(s, "verification_nonce");
        if !vn.is_empty() {
            rows.push(("Verification Nonce".to_string(), vn));
        }
    }
    let fps = strs_of(s, "pgp_fingerprints");
    if !fps.is_empty() {
        rows.push((
            "PGP Fingerprints".to_string(),
            format!("[{}]", fps.join(" ")),
        ));
        rows.push(("Backup".to_string(), bool_of(s, "backup").to_string()));
    }
    rows
}

fn print_rekey_status(cli: &mut Cli<'_, '_>, s: &Value) -> CmdResult {
    if cli.is_table() {
        cli.out(&format::kv_table(&rekey_status_rows(s)));
        Ok(0)
    } else {
        cli.print_struct(s)
    }
}

/// The text printed when a rekey completes.
pub fn rekey_keys_text(resp: &Value) -> String {
    let b64 = strs_of(resp, "keys_base64");
    let hex = strs_of(resp, "keys");
    let keys = if b64.is_empty() { hex } else { b64 };
    let fps = strs_of(resp, "pgp_fingerprints");
    let mut out = String::new();
    for (i, k) in keys.iter().enumerate() {
        match fps.get(i) {
            Some(fp) => out.push_str(&format!("Key {} fingerprint: {fp}; value: {k}\n", i + 1)),
            None => out.push_str(&format!("Key {}: {k}\n", i + 1)),
        }
    }
    out.push_str(&format!("\nOperation nonce: {}\n\n", str_of(resp, "nonce")));
    if bool_of(resp, "backup") {
        out.push_str(
            "The encrypted new shares are also backed up on the server (tresor operator rekey\n\
             -backup-retrieve); delete the backup with -backup-delete once they are safe.\n\n",
        );
    }
    if bool_of(resp, "verification_required") {
        out.push_str(&format!(
            "These {} new shares are NOT active yet: a threshold of them must be entered with\n\
             \"tresor operator rekey -verify\" (verification nonce {}). Until then the old shares\n\
             keep working.\n",
            keys.len(),
            str_of(resp, "verification_nonce")
        ));
    } else {
        out.push_str(&format!(
            "The unseal key shares were replaced: {} new shares. The old shares no longer work;\n\
             distribute the new ones to their holders.\n",
            keys.len()
        ));
    }
    out
}

/// `tresor operator rekey`.
pub fn rekey(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&REKEY, args)?;
    max_args(&p.args, 1)?;
    let client = cli.client(&p)?;
    let get = |path: &str| Request::new(Method::GET, path).no_wrap();
    if p.bool("backup-delete") {
        client
            .call(&Request::new(Method::DELETE, "sys/rekey/backup").no_wrap())
            .map_err(|e| remote("deleting backup keys", e))?;
        cli.outln("Success! Delete stored keys (if they existed)");
        return Ok(0);
    }
    if p.bool("backup-retrieve") {
        let s = client
            .read("sys/rekey/backup", &[])
            .map_err(|e| remote("retrieving rekey stored keys", e))?
            .ok_or_else(|| CliError::Remote("No backed-up keys found".to_string()))?;
        return cli.print_secret(&s);
    }
    if p.bool("cancel") {
        let mut req = Request::new(Method::DELETE, "sys/rekey/init").no_wrap();
        if let Some(n) = p.str("nonce") {
            req = req.json(json!({ "nonce": n }));
        }
        client
            .call(&req)
            .map_err(|e| remote("canceling rekey", e))?;
        cli.outln("Success! Canceled rekeying (if it was started)");
        return Ok(0);
    }
    if p.bool("init") {
        let pgp = pgp_list(&p, "pgp-keys")?;
        let body = json!({
            "secret_shares": p.int("key-shares").unwrap_or(5),
            "secret_threshold": p.int("key-threshold").unwrap_or(3),
            "pgp_keys": pgp,
            "backup": p.bool("backup"),
            "require_verification": p.bool("verify"),
        });
        let status = client
            .json(
                &Request::new(Method::PUT, "sys/rekey/init")
                    .json(body)
                    .no_wrap(),
            )
            .map_err(|e| remote("initializing rekey", e))?;
        if pgp.is_none() && cli.is_table() {
            cli.errln(
                "WARNING! The new shares will be returned in plain text. Anyone who loses them\n\
                 loses them for good: consider -pgp-keys (and -backup) to protect them.\n",
            );
        }
        return print_rekey_status(cli, &status);
    }
    let verify = p.bool("verify");
    let status_path = if verify {
        "sys/rekey/verify"
    } else {
        "sys/rekey/init"
    };
    if p.bool("status") {
        let status = client
            .json(&get(status_path))
            .map_err(|e| remote("reading rekey status", e))?;
        return print_rekey_status(cli, &status);
    }
    // Providing a key share.
    let status = client
        .json(&get(status_path))
        .map_err(|e| remote("reading rekey status", e))?;
    if !verify && !bool_of(&status, "started") {
        return Err(CliError::Local(
            "No rekey is in progress. Start one with \"tresor operator rekey -init\".".to_string(),
        ));
    }
    let nonce = p
        .str("nonce")
        .map(str::to_string)
        .unwrap_or_else(|| str_of(&status, "nonce"));
    if p.args.is_empty() {
        cli.errln(&format!("Rekey operation nonce: {nonce}"));
    }
    let key = key_input(cli, p.args.first(), "Key (will be hidden): ")?;
    let update = if verify {
        "sys/rekey/verify"
    } else {
        "sys/rekey/update"
    };
    let resp = client
        .json(
            &Request::new(Method::PUT, update)
                .json(json!({ "key": key.as_str(), "nonce": nonce }))
                .no_wrap(),
        )
        .map_err(|e| remote("posting unseal key", e))?;
    if !bool_of(&resp, "complete") {
        let status = client
            .json(&get(status_path))
            .map_err(|e| remote("reading rekey status", e))?;
        return print_rekey_status(cli, &status);
    }
    if !cli.is_table() {
        return cli.print_struct(&resp);
    }
    if verify {
        cli.outln(
            "Success! Rekey verification successful: the new unseal key shares are now active.",
        );
        return Ok(0);
    }
    let text = rekey_keys_text(&resp);
    cli.out(&text);
    Ok(0)
}

// ---- generate-root ----

const GENERATE_ROOT: Usage = Usage {
    text: "Usage: tresor operator generate-root [options] [KEY]

  Generates a new root token from a quorum of unseal key shares. Start with -init (an OTP
  is generated unless -otp or -pgp-key is given), enter shares one by one, then decode the
  encoded token with -decode=ENCODED -otp=OTP.",
    flags: &[
        flag("init", Kind::Bool, "Start a root token generation."),
        flag("cancel", Kind::Bool, "Cancel the generation in progress."),
        flag("status", Kind::Bool, "Show the progress."),
        flag(
            "decode",
            Kind::Str,
            "Decode this encoded token (- for stdin); needs -otp.",
        ),
        flag(
            "generate-otp",
            Kind::Bool,
            "Print a fresh OTP of the length the server wants.",
        ),
        flag("otp", Kind::Str, "The OTP, for -init or -decode."),
        flag(
            "pgp-key",
            Kind::Str,
            "File of a PGP public key to encrypt the new token with.",
        ),
        flag(
            "nonce",
            Kind::Str,
            "Nonce of the generation (default: the one in progress).",
        ),
    ],
};

const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A uniformly random base62 string (rejection sampling, no modulo bias).
pub fn random_base62(len: usize) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(len));
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < len {
        OsRng.fill_bytes(buf.as_mut());
        for &b in buf.iter() {
            // 248 = 4 * 62: bytes at or above it would favour the first characters.
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Why an encoded root token could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeTokenError {
    /// The encoded token is not base64.
    #[error("encoded token is not valid base64")]
    Base64,
    /// OTP and encoded token lengths differ.
    #[error("length of encoded token ({encoded}) does not match the OTP length ({otp})")]
    Length {
        /// Decoded token length.
        encoded: usize,
        /// OTP length.
        otp: usize,
    },
    /// The result is not text.
    #[error("decoded token is not valid UTF-8")]
    Utf8,
}

/// Decodes an encoded root token with its OTP: base64 (unpadded or padded), XOR with the
/// OTP bytes. The pre-1.10 form (a base64 16-byte OTP and a UUID token) is also accepted.
pub fn decode_root_token(encoded: &str, otp: &str) -> Result<Zeroizing<String>, DecodeTokenError> {
    let encoded = encoded.trim();
    let raw = Zeroizing::new(
        STANDARD_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| DecodeTokenError::Base64)?,
    );
    if raw.len() == otp.len() {
        let bytes: Zeroizing<Vec<u8>> =
            Zeroizing::new(raw.iter().zip(otp.as_bytes()).map(|(a, b)| a ^ b).collect());
        let s = std::str::from_utf8(&bytes).map_err(|_| DecodeTokenError::Utf8)?;
        return Ok(Zeroizing::new(s.to_string()));
    }
    if let Ok(otp_bytes) = STANDARD.decode(otp.trim()) {
        let otp_bytes = Zeroizing::new(otp_bytes);
        if otp_bytes.len() == raw.len() && raw.len() == 16 {
            let b: Vec<u8> = raw
                .iter()
                .zip(otp_bytes.iter())
                .map(|(a, b)| a ^ b)
                .collect();
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            return Ok(Zeroizing::new(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )));
        }
    }
    Err(DecodeTokenError::Length {
        encoded: raw.len(),
        otp: otp.len(),
    })
}

/// The rows of the generate-root status (printed without a header, like Vault).
pub fn generate_root_rows(s: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![
        vec!["Nonce".to_string(), str_of(s, "nonce")],
        vec!["Started".to_string(), bool_of(s, "started").to_string()],
        vec![
            "Progress".to_string(),
            format!("{}/{}", int_of(s, "progress"), int_of(s, "required")),
        ],
        vec!["Complete".to_string(), bool_of(s, "complete").to_string()],
    ];
    let fp = str_of(s, "pgp_fingerprint");
    if !fp.is_empty() {
        rows.push(vec!["PGP Fingerprint".to_string(), fp]);
    }
    let (enc, enc_root) = (str_of(s, "encoded_token"), str_of(s, "encoded_root_token"));
    if !enc.is_empty() {
        rows.push(vec!["Encoded Token".to_string(), enc]);
    } else if !enc_root.is_empty() {
        rows.push(vec!["Encoded Root Token".to_string(), enc_root]);
    }
    let otp = str_of(s, "otp");
    if !otp.is_empty() {
        rows.push(vec!["OTP".to_string(), otp]);
    }
    let len = int_of(s, "otp_length");
    if len != 0 {
        rows.push(vec!["OTP Length".to_string(), len.to_string()]);
    }
    rows
}

fn print_generate_root_status(cli: &mut Cli<'_, '_>, s: &Value) -> CmdResult {
    if !cli.is_table() {
        return cli.print_struct(s);
    }
    if !str_of(s, "otp").is_empty() {
        cli.errln(
            "A one-time password (OTP) was generated and is shown below. It is needed to decode\n\
             the new root token at the end, so keep it safe.",
        );
    }
    cli.out(&format::columns(&generate_root_rows(s)));
    Ok(0)
}

fn generate_root_status(client: &Client) -> Result<Value, CliError> {
    client
        .json(&Request::new(Method::GET, "sys/generate-root/attempt").no_wrap())
        .map_err(|e| remote("getting root generation status", e))
}

/// `tresor operator generate-root`.
pub fn generate_root(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&GENERATE_ROOT, args)?;
    max_args(&p.args, 1)?;
    if let Some(encoded) = p.str("decode") {
        let otp = p
            .str("otp")
            .filter(|o| !o.is_empty())
            .ok_or_else(|| {
                CliError::Usage(
                    "Missing -otp flag; the OTP is required to decode the token".to_string(),
                )
            })?
            .to_string();
        let encoded = if encoded == "-" {
            cli.read_stdin()?.trim().to_string()
        } else {
            encoded.to_string()
        };
        let token = decode_root_token(&encoded, &otp)
            .map_err(|e| CliError::Local(format!("Error decoding root token: {e}")))?;
        // The decoded token is printed as plain text whatever -format says, as Vault's CLI does,
        // so `$(tresor operator generate-root -decode=... -otp=...)` is the token itself.
        cli.out(token.as_str());
        if cli.ctx.stdout_is_terminal {
            cli.out("\n");
        }
        return Ok(0);
    }
    let client = cli.client(&p)?;
    if p.bool("generate-otp") {
        let status = generate_root_status(&client)?;
        let len = int_of(&status, "otp_length");
        let otp = if len <= 0 {
            let mut raw = Zeroizing::new([0u8; 16]);
            OsRng.fill_bytes(raw.as_mut());
            Zeroizing::new(STANDARD.encode(raw.as_ref()))
        } else {
            random_base62(len as usize)
        };
        return cli.print_field(Some(&Value::String(otp.to_string())), "otp");
    }
    if p.bool("cancel") {
        client
            .call(&Request::new(Method::DELETE, "sys/generate-root/attempt").no_wrap())
            .map_err(|e| remote("canceling root token generation", e))?;
        cli.outln("Success! Root token generation canceled (if it was started)");
        return Ok(0);
    }
    if p.bool("init") {
        let otp = p.string("otp");
        let pgp = match p.str("pgp-key") {
            Some(path) => read_pgp_key(path)
                .map_err(|e| CliError::Usage(format!("invalid value for -pgp-key: {e}")))?,
            None => String::new(),
        };
        if !otp.is_empty() && !pgp.is_empty() {
            return Err(CliError::Usage(
                "Error initializing: cannot specify both -otp and -pgp-key".to_string(),
            ));
        }
        let status = client
            .json(
                &Request::new(Method::PUT, "sys/generate-root/attempt")
                    .json(json!({ "otp": otp, "pgp_key": pgp }))
                    .no_wrap(),
            )
            .map_err(|e| remote("initializing root generation", e))?;
        return print_generate_root_status(cli, &status);
    }
    let status = generate_root_status(&client)?;
    if p.bool("status") {
        return print_generate_root_status(cli, &status);
    }
    if !bool_of(&status, "started") {
        return Err(CliError::Local(
            "No root generation is in progress. Start one with \"tresor operator generate-root -init\"."
                .to_string(),
        ));
    }
    let nonce = p
        .str("nonce")
        .map(str::to_string)
        .unwrap_or_else(|| str_of(&status, "nonce"));
    if p.args.is_empty() {
        cli.errln(&format!("Operation nonce: {nonce}"));
    }
    let key = key_input(cli, p.args.first(), "Unseal Key (will be hidden): ")?;
    let status = client
        .json(
            &Request::new(Method::PUT, "sys/generate-root/update")
                .json(json!({ "key": key.as_str(), "nonce": nonce }))
                .no_wrap(),
        )
        .map_err(|e| remote("posting unseal key", e))?;
    print_generate_root_status(cli, &status)
}

// ---- rotate / key-status ----

const ROTATE: Usage = Usage {
    text: "Usage: tresor operator rotate [options]

  Adds a new encryption key to the keyring; new writes use it, old data stays readable.",
    flags: &[],
};

const KEY_STATUS: Usage = Usage {
    text: "Usage: tresor operator key-status [options]

  Shows the active encryption key's term and install time.",
    flags: &[],
};

/// Go's RFC 822 layout (`02 Jan 06 15:04 MST`), in UTC.
pub fn rfc822(rfc3339: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    match time::OffsetDateTime::parse(rfc3339, &Rfc3339) {
        Ok(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:02} {} {:02} {:02}:{:02} UTC",
                t.day(),
                MONTHS[usize::from(u8::from(t.month())) - 1],
                t.year().rem_euclid(100),
                t.hour(),
                t.minute()
            )
        }
        Err(_) => rfc3339.to_string(),
    }
}

/// The key-status rows.
pub fn key_status_rows(d: &Map<String, Value>) -> Vec<Vec<String>> {
    let v = Value::Object(d.clone());
    let mut rows = vec![
        vec!["Key Term".to_string(), int_of(&v, "term").to_string()],
        vec![
            "Install Time".to_string(),
            rfc822(&str_of(&v, "install_time")),
        ],
    ];
    if d.contains_key("encryptions") {
        rows.push(vec![
            "Encryption Count".to_string(),
            int_of(&v, "encryptions").to_string(),
        ]);
    }
    rows
}

fn fetch_key_status(client: &Client) -> Result<Map<String, Value>, CliError> {
    client
        .read("sys/key-status", &[])
        .map_err(|e| remote("reading key status", e))?
        .map(|s| s.data())
        .ok_or_else(|| CliError::Remote("Error reading key status: empty response".to_string()))
}

/// `tresor operator rotate`.
pub fn rotate(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&ROTATE, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    client
        .call(&Request::new(Method::POST, "sys/rotate"))
        .map_err(|e| remote("rotating key", e))?;
    let status = fetch_key_status(&client)?;
    if cli.is_table() {
        cli.outln("Success! Rotated key");
        cli.outln("");
        cli.out(&format::columns(&key_status_rows(&status)));
        Ok(0)
    } else {
        cli.print_map(&status)
    }
}

/// `tresor operator key-status`.
pub fn key_status(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&KEY_STATUS, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    let status = fetch_key_status(&client)?;
    if cli.is_table() {
        cli.out(&format::columns(&key_status_rows(&status)));
        Ok(0)
    } else {
        cli.print_map(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags;

    #[test]
    fn pgp_key_files_base64_or_binary() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("a.asc.b64");
        std::fs::write(&text, "bWFkZSB1cA==\n").unwrap();
        let bin = dir.path().join("b.gpg");
        std::fs::write(&bin, [0x99u8, 0x01, 0x0d, 0xff, 0x00]).unwrap();
        assert_eq!(
            read_pgp_key(text.to_str().unwrap()).unwrap(),
            "bWFkZSB1cA=="
        );
        assert_eq!(
            read_pgp_key(bin.to_str().unwrap()).unwrap(),
            STANDARD.encode([0x99u8, 0x01, 0x0d, 0xff, 0x00])
        );
        let list = format!("{}, {}", text.display(), bin.display());
        assert_eq!(read_pgp_keys(&list).unwrap().len(), 2);
        assert!(matches!(
            read_pgp_key("keybase:alice"),
            Err(PgpKeyError::Keybase(_))
        ));
        assert!(matches!(
            read_pgp_key(dir.path().join("nope").to_str().unwrap()),
            Err(PgpKeyError::Read { .. })
        ));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        assert!(matches!(
            read_pgp_key(empty.to_str().unwrap()),
            Err(PgpKeyError::Empty(_))
        ));
    }

    #[test]
    fn init_body_defaults_and_flags() {
        let parse = |a: &[&str]| {
            let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
            flags::parse(&[INIT.flags], &a).unwrap()
        };
        assert_eq!(
            init_body(&parse(&[])).unwrap(),
            json!({"secret_shares": 5, "secret_threshold": 3, "stored_shares": 0,
                   "pgp_keys": null, "recovery_shares": 0, "recovery_threshold": 0,
                   "recovery_pgp_keys": null, "root_token_pgp_key": ""})
        );
        let b = init_body(&parse(&["-key-shares=1", "-key-threshold=1"])).unwrap();
        assert_eq!(b["secret_shares"], 1);
        assert_eq!(b["secret_threshold"], 1);
        assert!(matches!(
            init_body(&parse(&["-pgp-keys=/nonexistent/key"])),
            Err(CliError::Usage(_))
        ));
    }

    #[test]
    fn init_output_lists_keys_and_json() {
        let resp = json!({"keys": ["aa", "bb"], "keys_base64": ["qg==", "uw=="], "root_token": "hvs.root"});
        let (text, j) = init_output(&resp, 2, 2);
        assert!(text.starts_with(
            "Unseal Key 1: qg==\nUnseal Key 2: uw==\n\nInitial Root Token: hvs.root\n"
        ));
        assert_eq!(j["unseal_keys_b64"], json!(["qg==", "uw=="]));
        assert_eq!(j["unseal_keys_hex"], json!(["aa", "bb"]));
        assert_eq!(j["unseal_shares"], 2);
        assert_eq!(j["root_token"], "hvs.root");
        assert_eq!(j["recovery_keys_b64"], json!([]));
    }

    #[test]
    fn base62_otps() {
        let otp = random_base62(28);
        assert_eq!(otp.len(), 28);
        assert!(otp.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(*random_base62(28), *otp, "two OTPs should differ");
    }

    #[test]
    fn decodes_root_tokens() {
        let token = "hvs.ABCDEFGHIJKLMNOPQRSTUVWX";
        let otp = random_base62(token.len());
        let xored: Vec<u8> = token.bytes().zip(otp.bytes()).map(|(a, b)| a ^ b).collect();
        let encoded = STANDARD_NO_PAD.encode(&xored);
        assert_eq!(decode_root_token(&encoded, &otp).unwrap().as_str(), token);
        // Padded base64 is accepted too.
        let padded = STANDARD.encode(&xored);
        assert_eq!(decode_root_token(&padded, &otp).unwrap().as_str(), token);
        assert!(matches!(
            decode_root_token(&encoded, "short"),
            Err(DecodeTokenError::Length { .. })
        ));
        assert_eq!(
            decode_root_token("!!!", &otp),
            Err(DecodeTokenError::Base64)
        );
    }

    #[test]
    fn decodes_legacy_uuid_tokens() {
        let uuid_bytes: [u8; 16] = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ];
        let otp_bytes = [7u8; 16];
        let enc: Vec<u8> = uuid_bytes
            .iter()
            .zip(otp_bytes.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        let token = decode_root_token(&STANDARD.encode(&enc), &STANDARD.encode(otp_bytes)).unwrap();
        assert_eq!(token.as_str(), "12345678-9abc-def0-0123-456789abcdef");
    }

    #[test]
    fn status_tables() {
        let s = json!({"nonce": "n1", "started": true, "progress": 1, "required": 3,
                       "complete": false, "encoded_token": "", "encoded_root_token": "",
                       "pgp_fingerprint": "", "otp": "abc", "otp_length": 28});
        let out = format::columns(&generate_root_rows(&s));
        assert_eq!(
            out,
            "Nonce         n1\nStarted       true\nProgress      1/3\nComplete      false\nOTP           abc\nOTP Length    28\n"
        );
        let s = json!({"nonce": "n2", "started": true, "t": 3, "n": 5, "progress": 1,
                       "required": 2, "pgp_fingerprints": null, "backup": false,
                       "verification_required": false});
        let rows = rekey_status_rows(&s);
        assert_eq!(rows[2], ("Rekey Progress".to_string(), "1/2".to_string()));
        assert_eq!(rows[3], ("New Shares".to_string(), "5".to_string()));
        assert_eq!(rows.len(), 6);
        let s = json!({"nonce": "", "started": false, "pgp_fingerprints": ["ab", "cd"], "backup": true});
        let rows = rekey_status_rows(&s);
        assert_eq!(
            rows[2],
            ("PGP Fingerprints".to_string(), "[ab cd]".to_string())
        );
    }

    #[test]
    fn rekey_completion_text() {
        let resp = json!({"complete": true, "keys": ["aa"], "keys_base64": ["qg=="],
                          "nonce": "n1", "pgp_fingerprints": null, "backup": false});
        let t = rekey_keys_text(&resp);
        assert!(t.starts_with("Key 1: qg==\n\nOperation nonce: n1\n"), "{t}");
        let resp = json!({"complete": true, "keys": ["aa"], "keys_base64": ["qg=="],
                          "nonce": "n1", "pgp_fingerprints": ["fp1"], "backup": true});
        assert!(rekey_keys_text(&resp).starts_with("Key 1 fingerprint: fp1; value: qg==\n"));
    }

    #[test]
    fn key_status_rows_and_time() {
        assert_eq!(
            rfc822("2015-05-29T14:50:46.223692553-07:00"),
            "29 May 15 21:50 UTC"
        );
        let d = json!({"term": 3, "install_time": "2024-01-02T03:04:05Z", "encryptions": 9});
        let rows = key_status_rows(d.as_object().unwrap());
        assert_eq!(
            format::columns(&rows),
            "Key Term            3\nInstall Time        02 Jan 24 03:04 UTC\nEncryption Count    9\n"
        );
    }
}
