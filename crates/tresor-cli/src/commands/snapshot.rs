//! `operator snapshot save|inspect|verify|restore` (and Vault's `operator raft snapshot
//! save|restore|inspect`).
//!
//! `inspect` and `verify` work offline, on the file alone, with a reader of their own: like
//! `pki verify-sign`, the CLI checks what the server wrote without the server's code (the
//! format is specified in docs/backups.md). `inspect` checks the structure and the SHA-256;
//! `verify` also combines the unseal key shares, opens the root key blob and the keyring
//! stored in the snapshot, checks the HMAC integrity tag (keyed by HKDF from the root key) and
//! decrypts every entry. Keys and the decrypted keyring stay in zeroizing buffers.

use std::collections::BTreeMap;
use std::io::Write;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf, hmac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};
use tresor_client::{FileBody, Method};
use zeroize::Zeroizing;

use super::{Cli, CliError, CmdResult, Usage, exact_args, remote};
use crate::client::Request;
use crate::flags::{Kind, flag};

const MAGIC: &[u8; 8] = b"TRESNAP\0";
const FORMAT: u16 = 1;
const SEAL_CONFIG: &str = "core/seal-config";
const ROOT_KEY: &str = "core/root-key";
const KEYRING: &str = "core/keyring";
/// Progress is shown for transfers at least this large.
const LARGE: u64 = 8 << 20;

/// A snapshot whose structure and checksum are intact.
struct Snapshot<'a> {
    header: Map<String, Value>,
    manifest: Map<String, Value>,
    /// (key, value), in key order.
    entries: Vec<(&'a str, &'a [u8])>,
    signed: &'a [u8],
    tag: &'a [u8],
}

impl<'a> Snapshot<'a> {
    fn get(&self, key: &str) -> Option<&'a [u8]> {
        self.entries
            .binary_search_by(|(k, _)| (*k).cmp(key))
            .ok()
            .map(|i| self.entries[i].1)
    }
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |acc, x| (acc << 8) | u64::from(*x))
}

/// Reads and checks a snapshot: magic, format, SHA-256, record structure, key order, and the
/// manifest against the entries.
fn read(bytes: &[u8]) -> Result<Snapshot<'_>, String> {
    if bytes.len() < 10 || &bytes[..8] != MAGIC {
        return Err("not a Tresor snapshot (bad magic)".into());
    }
    let format = be(&bytes[8..10]) as u16;
    if format > FORMAT {
        return Err(format!(
            "snapshot format {format} is newer than this CLI understands ({FORMAT})"
        ));
    }
    if bytes.len() < 10 + 4 + 65 {
        return Err("truncated".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if digest::digest(&digest::SHA256, body).as_ref() != sum {
        return Err("checksum mismatch (the file was altered or truncated)".into());
    }
    let signed = &bytes[..bytes.len() - 64];
    let tag = &bytes[bytes.len() - 64..bytes.len() - 32];
    let mut at = 10usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let end = at.checked_add(n).filter(|e| *e <= signed.len());
        let end = end.ok_or_else(|| format!("truncated at byte {at}"))?;
        let s = &signed[at..end];
        at = end;
        Ok(s)
    };
    let hlen = be(take(4)?) as usize;
    let header: Map<String, Value> =
        serde_json::from_slice(take(hlen)?).map_err(|e| format!("header: {e}"))?;
    let mut entries: Vec<(&str, &[u8])> = Vec::new();
    let mut sha = digest::Context::new(&digest::SHA256);
    let mut value_bytes = 0u64;
    let manifest: Map<String, Value> = loop {
        match take(1)?[0] {
            b'E' => {
                let klen_b = take(2)?;
                let key_b = take(be(klen_b) as usize)?;
                let rev = take(8)?;
                let vlen_b = take(4)?;
                let value = take(be(vlen_b) as usize)?;
                let key = std::str::from_utf8(key_b).map_err(|_| "a key is not UTF-8")?;
                if entries.last().is_some_and(|(prev, _)| *prev >= key) {
                    return Err(format!("keys out of order at {key:?}"));
                }
                for part in [&b"E"[..], klen_b, key_b, rev, vlen_b, value] {
                    sha.update(part);
                }
                value_bytes += value.len() as u64;
                entries.push((key, value));
            }
            b'M' => {
                let mlen = be(take(4)?) as usize;
                break serde_json::from_slice(take(mlen)?).map_err(|e| format!("manifest: {e}"))?;
            }
            other => return Err(format!("unknown record {other:#04x}")),
        }
    };
    if take(1)? != b"T" || at != signed.len() {
        return Err("data after the manifest".into());
    }
    let want_sha = hex(sha.finish().as_ref());
    if manifest.get("entries").and_then(Value::as_u64) != Some(entries.len() as u64)
        || manifest.get("value_bytes").and_then(Value::as_u64) != Some(value_bytes)
        || manifest.get("entries_sha256").and_then(Value::as_str) != Some(want_sha.as_str())
    {
        return Err("the manifest does not match the entries".into());
    }
    Ok(Snapshot {
        header,
        manifest,
        entries,
        signed,
        tag,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn read_file(path: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|e| CliError::Local(format!("Error reading {path}: {e}")))
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

/// Prints progress lines on stderr for a large transfer: at most one per 5% (or per 8 MiB
/// when the size is unknown), and the last one.
struct Meter {
    what: &'static str,
    shown: u64,
}

impl Meter {
    fn line(&mut self, done: u64, total: Option<u64>) -> Option<String> {
        let big = total.unwrap_or(done) >= LARGE;
        let step = total.map_or(LARGE, |t| (t / 20).max(1));
        let finished = total == Some(done);
        if !big || (done < self.shown + step && !finished) || (finished && self.shown == done) {
            return None;
        }
        self.shown = done;
        Some(match total {
            Some(t) => format!(
                "{}: {} of {} ({}%)",
                self.what,
                human(done),
                human(t),
                done * 100 / t.max(1)
            ),
            None => format!("{}: {}", self.what, human(done)),
        })
    }
}

fn summary(s: &Snapshot<'_>, size: usize) -> Map<String, Value> {
    let mut m = Map::new();
    for k in [
        "cluster_id",
        "cluster_name",
        "created_at",
        "backend",
        "revision",
        "tresor_version",
        "format",
    ] {
        m.insert(k.into(), s.header.get(k).cloned().unwrap_or(Value::Null));
    }
    m.insert("entries".into(), json!(s.entries.len()));
    m.insert("size".into(), json!(size));
    m.insert("checksum".into(), json!("ok"));
    for k in ["prefixes", "views"] {
        m.insert(k.into(), s.manifest.get(k).cloned().unwrap_or(Value::Null));
    }
    m
}

const INSPECT: Usage = Usage {
    text: "Usage: tresor operator snapshot inspect [options] FILE

  Checks a snapshot offline, without keys: its structure and its SHA-256 checksum, and
  prints its manifest (cluster, time, backend, store revision, entries per prefix and per
  mount view). Exits 1 when the file is corrupt.",
    flags: &[],
};

/// `tresor operator snapshot inspect FILE`.
pub fn inspect(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&INSPECT, args)?;
    exact_args(&p.args, 1)?;
    let path = &p.args[0];
    let bytes = read_file(path)?;
    let s = read(&bytes)
        .map_err(|e| CliError::Local(format!("Error: snapshot {path} is corrupt: {e}")))?;
    cli.print_value(&Value::Object(summary(&s, bytes.len())))
}

const VERIFY: Usage = Usage {
    text: "Usage: tresor operator snapshot verify [options] FILE

  Verifies a snapshot offline with the unseal keys of its cluster: combines the shares
  (as many as the seal configuration stored in the snapshot requires), opens the root key
  and the keyring stored in the snapshot, checks the integrity tag, decrypts every entry,
  and reports entries per mount. Shares come from -key (repeatable), -key-file (one share
  per line, or the JSON of operator init -format=json), or are prompted for. Exits 1 on any
  failure.",
    flags: &[
        flag(
            "key",
            Kind::Repeat,
            "An unseal key share (hex or base64); repeatable.",
        ),
        flag(
            "key-file",
            Kind::Repeat,
            "A file of unseal key shares, one per line (or init's JSON); repeatable.",
        ),
    ],
};

/// Shares from a key file: init's JSON output, or one share per line.
fn shares_in_file(path: &str) -> Result<Vec<Zeroizing<String>>, CliError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Local(format!("Error reading {path}: {e}")))?,
    );
    if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&text) {
        for k in ["unseal_keys_b64", "keys_base64", "unseal_keys_hex", "keys"] {
            if let Some(Value::Array(a)) = m.get(k) {
                return Ok(a
                    .iter()
                    .filter_map(|v| v.as_str().map(|s| Zeroizing::new(s.to_string())))
                    .collect());
            }
        }
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| Zeroizing::new(l.to_string()))
        .collect())
}

/// A share given as hex or standard base64 (as the server accepts it).
fn decode_share(s: &str) -> Result<Zeroizing<Vec<u8>>, String> {
    let s = s.trim();
    if s.len().is_multiple_of(2)
        && s.bytes().all(|b| b.is_ascii_hexdigit())
        && (64..=66).contains(&s.len())
    {
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
            .collect::<Result<Vec<u8>, _>>()?;
        return Ok(Zeroizing::new(bytes));
    }
    STANDARD
        .decode(s)
        .map(Zeroizing::new)
        .map_err(|_| "an unseal key share is neither hex nor base64".to_string())
}

fn aead(key: &[u8]) -> Result<LessSafeKey, String> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| "a key is not 32 bytes".to_string())
}

/// Opens a barrier value: `term u32 | version 1 | nonce 12 | ciphertext+tag`, the storage path
/// as associated data.
fn open(key: &LessSafeKey, path: &str, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
    if blob.len() < 4 + 1 + 12 + 16 || blob[4] != 1 {
        return Err(format!("the value at {path:?} is malformed"));
    }
    let nonce = Nonce::try_assume_unique_for_key(&blob[5..17]).map_err(|_| "bad nonce")?;
    let mut buf = Zeroizing::new(blob[17..].to_vec());
    let n = key
        .open_in_place(nonce, Aad::from(path.as_bytes()), &mut buf[..])
        .map_err(|_| format!("the value at {path:?} does not decrypt"))?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// What `verify` found.
struct Verified {
    threshold: usize,
    shares: usize,
    terms: usize,
    decrypted: usize,
    mounts: Vec<(String, String, usize)>,
}

fn verify_snapshot(s: &Snapshot<'_>, given: &[Zeroizing<String>]) -> Result<Verified, String> {
    let cfg: Value = serde_json::from_slice(s.get(SEAL_CONFIG).ok_or("no seal configuration")?)
        .map_err(|e| format!("seal configuration: {e}"))?;
    let threshold = cfg["secret_threshold"].as_u64().unwrap_or(0) as usize;
    let shares = cfg["secret_shares"].as_u64().unwrap_or(0) as usize;
    if threshold == 0 {
        return Err("the seal configuration has no threshold".into());
    }
    if given.len() < threshold {
        return Err(format!(
            "{} unseal key shares given, the snapshot needs {threshold}",
            given.len()
        ));
    }
    let decoded = given
        .iter()
        .take(threshold)
        .map(|g| decode_share(g))
        .collect::<Result<Vec<_>, _>>()?;
    let unseal_key = if threshold == 1 {
        decoded[0].clone()
    } else {
        let refs: Vec<&[u8]> = decoded.iter().map(|d| &d[..]).collect();
        tresor_seal::shamir::combine(&refs).map_err(|e| format!("combining the shares: {e}"))?
    };
    let root = open(
        &aead(&unseal_key)?,
        ROOT_KEY,
        s.get(ROOT_KEY).ok_or("no root key blob")?,
    )
    .map_err(|_| "the unseal keys do not open this snapshot's root key".to_string())?;
    let mut mac_key = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"tresor snapshot")
        .extract(&root)
        .expand(&[b"integrity tag hmac-sha256 v1"], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut mac_key[..]))
        .map_err(|_| "deriving the tag key")?;
    hmac::verify(
        &hmac::Key::new(hmac::HMAC_SHA256, &mac_key[..]),
        s.signed,
        s.tag,
    )
    .map_err(|_| "the integrity tag does not verify: the snapshot was altered".to_string())?;
    let keyring_plain = open(&aead(&root)?, KEYRING, s.get(KEYRING).ok_or("no keyring")?)?;
    let keyring: Value =
        serde_json::from_slice(&keyring_plain).map_err(|e| format!("keyring: {e}"))?;
    let mut terms: BTreeMap<u64, LessSafeKey> = BTreeMap::new();
    for t in keyring["terms"].as_array().ok_or("keyring without terms")? {
        let raw = Zeroizing::new(
            STANDARD
                .decode(t["key"].as_str().unwrap_or_default())
                .map_err(|_| "a keyring term is not base64")?,
        );
        terms.insert(t["term"].as_u64().unwrap_or(0), aead(&raw)?);
    }
    let decrypt = |key: &str, value: &[u8]| -> Result<Zeroizing<Vec<u8>>, String> {
        let term = if value.len() >= 4 { be(&value[..4]) } else { 0 };
        let k = terms
            .get(&term)
            .ok_or_else(|| format!("the value at {key:?} uses unknown key term {term}"))?;
        open(k, key, value)
    };
    let mut decrypted = 0;
    for (key, value) in &s.entries {
        if matches!(*key, SEAL_CONFIG | ROOT_KEY | KEYRING) {
            continue;
        }
        decrypt(key, value)?;
        decrypted += 1;
    }
    let mut mounts = Vec::new();
    for (table, prefix) in [("core/mounts", ""), ("core/auth", "auth/")] {
        let Some(blob) = s.get(table) else { continue };
        let list: Value =
            serde_json::from_slice(&decrypt(table, blob)?).map_err(|e| format!("{table}: {e}"))?;
        for m in list.as_array().into_iter().flatten() {
            let kind = m["type"].as_str().unwrap_or_default().to_string();
            let uuid = m["uuid"].as_str().unwrap_or_default();
            let view = match (prefix, kind.as_str()) {
                (_, "system") => "sys/".to_string(),
                ("", "identity") => "sys/identity/".to_string(),
                ("auth/", "token") => "sys/token/".to_string(),
                ("", _) => format!("logical/{uuid}/"),
                _ => format!("auth/{uuid}/"),
            };
            let count = s
                .entries
                .iter()
                .filter(|(k, _)| k.starts_with(&view))
                .count();
            let path = format!("{prefix}{}", m["path"].as_str().unwrap_or_default());
            mounts.push((path, kind, count));
        }
    }
    Ok(Verified {
        threshold,
        shares,
        terms: terms.len(),
        decrypted,
        mounts,
    })
}

/// `tresor operator snapshot verify FILE -key=... | -key-file=...`.
pub fn verify(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&VERIFY, args)?;
    exact_args(&p.args, 1)?;
    let path = p.args[0].clone();
    let bytes = read_file(&path)?;
    let s = read(&bytes)
        .map_err(|e| CliError::Local(format!("Error: snapshot {path} is corrupt: {e}")))?;
    let mut given: Vec<Zeroizing<String>> = p.all("key").into_iter().map(Zeroizing::new).collect();
    for f in p.all("key-file") {
        given.extend(shares_in_file(&f)?);
    }
    if given.is_empty() {
        let threshold = s
            .get(SEAL_CONFIG)
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|c| c["secret_threshold"].as_u64())
            .unwrap_or(1);
        for i in 0..threshold {
            let k = cli
                .prompt_line(&format!(
                    "Unseal Key {} of {threshold} (will be hidden): ",
                    i + 1
                ))?
                .ok_or_else(|| CliError::Local("Error reading unseal key: no input".into()))?;
            given.push(k);
        }
    }
    let v = verify_snapshot(&s, &given)
        .map_err(|e| CliError::Local(format!("Error: snapshot {path} does not verify: {e}")))?;
    let mut m = summary(&s, bytes.len());
    m.insert("integrity_tag".into(), json!("ok"));
    m.insert(
        "unseal_keys".into(),
        json!(format!("ok ({} of {})", v.threshold, v.shares)),
    );
    m.insert("key_terms".into(), json!(v.terms));
    m.insert("entries_decrypted".into(), json!(v.decrypted));
    m.remove("views");
    let mounts: Map<String, Value> = v
        .mounts
        .iter()
        .map(|(p, k, n)| (p.clone(), json!({"type": k, "entries": n})))
        .collect();
    if cli.is_table() && cli.field.is_none() {
        cli.print_value(&Value::Object(m))?;
        cli.outln("");
        cli.outln(&format!("{:<24} {:<12} {}", "Mount", "Type", "Entries"));
        cli.outln(&format!("{:<24} {:<12} {}", "-----", "----", "-------"));
        for (p, k, n) in &v.mounts {
            cli.outln(&format!("{p:<24} {k:<12} {n}"));
        }
        Ok(0)
    } else {
        m.insert("mounts".into(), Value::Object(mounts));
        cli.print_value(&Value::Object(m))
    }
}

const SAVE: Usage = Usage {
    text: "Usage: tresor operator snapshot save [options] FILE

  Takes a snapshot of the whole store (GET sys/storage/raft/snapshot; needs sudo) and
  writes it to FILE (mode 0600), then checks its checksum. The snapshot is encrypted as
  stored: it is useless without the unseal keys. Progress is shown on stderr for large
  snapshots.",
    flags: &[],
};

/// `tresor operator snapshot save FILE`.
pub fn save(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&SAVE, args)?;
    exact_args(&p.args, 1)?;
    let path = p.args[0].clone();
    let client = cli.client(&p)?;
    let partial = format!("{path}.partial");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts
        .open(&partial)
        .map_err(|e| CliError::Local(format!("Error creating {partial}: {e}")))?;
    let mut out = std::io::BufWriter::new(file);
    let mut meter = Meter {
        what: "saving",
        shown: 0,
    };
    let stderr = &mut *cli.ctx.stderr;
    let got = client.download(
        &Request::new(Method::GET, "sys/storage/raft/snapshot").no_wrap(),
        &mut |chunk| out.write_all(chunk),
        &mut |done, total| {
            if let Some(l) = meter.line(done, total) {
                let _ = writeln!(stderr, "{l}");
            }
        },
    );
    let flushed = out.flush();
    drop(out);
    let got = match (got, flushed) {
        (Ok(n), Ok(())) => n,
        (Err(e), _) => {
            let _ = std::fs::remove_file(&partial);
            return Err(remote("taking the snapshot", e));
        }
        (_, Err(e)) => {
            let _ = std::fs::remove_file(&partial);
            return Err(CliError::Local(format!("Error writing {partial}: {e}")));
        }
    };
    let bytes = read_file(&partial)?;
    let entries = match read(&bytes) {
        Ok(s) => s.entries.len(),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(CliError::Local(format!(
                "Error: the snapshot received is corrupt: {e}"
            )));
        }
    };
    std::fs::rename(&partial, &path)
        .map_err(|e| CliError::Local(format!("Error renaming {partial} to {path}: {e}")))?;
    cli.outln(&format!(
        "Success! Snapshot saved to {path} ({entries} entries, {}, checksum ok)",
        human(got)
    ));
    Ok(0)
}

const RESTORE: Usage = Usage {
    text: "Usage: tresor operator snapshot restore [options] FILE

  Restores a snapshot (POST sys/storage/raft/snapshot; needs sudo), replacing the whole
  store. The file's checksum is checked here first; the server validates it again (and its
  integrity tag, with this cluster's keys) before it writes anything. The server is then
  sealed and unseals with the unseal keys of the snapshot's cluster. An uninitialised server
  accepts a restore without a token. A snapshot of another cluster needs -force.",
    flags: &[flag(
        "force",
        Kind::Bool,
        "Restore a snapshot of another cluster (POST sys/storage/raft/snapshot-force).",
    )],
};

/// `tresor operator snapshot restore [-force] FILE`.
pub fn restore(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&RESTORE, args)?;
    exact_args(&p.args, 1)?;
    let path = p.args[0].clone();
    let bytes = read_file(&path)?;
    read(&bytes).map_err(|e| CliError::Local(format!("Error: snapshot {path} is corrupt: {e}")))?;
    let len = bytes.len() as u64;
    drop(bytes);
    let client = cli.client(&p)?;
    let file = std::fs::File::open(&path)
        .map_err(|e| CliError::Local(format!("Error reading {path}: {e}")))?;
    let mut meter = Meter {
        what: "uploading",
        shown: 0,
    };
    let body = FileBody::new(
        file,
        len,
        Box::new(move |done, total| {
            if let Some(l) = meter.line(done, total) {
                eprintln!("{l}");
            }
        }),
    );
    let endpoint = if p.bool("force") {
        "sys/storage/raft/snapshot-force"
    } else {
        "sys/storage/raft/snapshot"
    };
    let resp = client
        .upload(&Request::new(Method::POST, endpoint).no_wrap(), body)
        .map_err(|e| remote("restoring the snapshot", e))?;
    let answer: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
    // The pipeline's answer has the envelope; the uninitialised server's is bare.
    let data = answer
        .get("data")
        .filter(|d| d.is_object())
        .unwrap_or(&answer);
    if len >= LARGE {
        cli.errln("waiting for the server to finish writing...");
    }
    // seal-status answers once the restore's writes are done.
    let status = client
        .seal_status()
        .map_err(|e| remote("checking the seal status", e))?;
    cli.outln(&format!(
        "Success! Restored the snapshot of cluster {} ({} entries, taken {}).",
        data["cluster_id"].as_str().unwrap_or("?"),
        data["entries"],
        data["created_at"].as_str().unwrap_or("?"),
    ));
    cli.outln(&format!(
        "The server is sealed: unseal it with {} of the {} unseal keys of the snapshot's cluster (tresor operator unseal).",
        status.t, status.n
    ));
    Ok(0)
}
