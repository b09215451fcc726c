//! `tresor ssh`: Vault's `ssh -mode=ca`. Signs the user's public key with an SSH engine role
//! (`MOUNT/sign/ROLE`, the user as the principal), writes the certificate to a private
//! temporary file, runs `ssh` with the key and that certificate, and removes the file when
//! ssh exits. The exit code is ssh's. Only the CA mode is implemented; the OTP mode needs the
//! host's verification helper and is refused with a clear message.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use super::{Cli, CliError, CmdResult, Usage, min_args, remote, sanitize_path};
use crate::flags::{Kind, flag};

const SSH: Usage = Usage {
    text: "Usage: tresor ssh [options] [USER@]HOST [SSH ARGS...]

  Signs your SSH public key with an SSH secrets engine role and connects to HOST with
  ssh, using the key and the certificate. USER (default: $USER) is the certificate's
  principal. Arguments after HOST go to ssh unchanged.

      $ tresor ssh -mode=ca -role=dev alice@host.example.org
      $ tresor ssh -role=dev -public-key-path=~/.ssh/work.pub alice@host -p 2222 uptime",
    flags: &[
        flag(
            "mode",
            Kind::Str,
            "Authentication mode: ca (the default; otp is not supported).",
        ),
        flag(
            "role",
            Kind::Str,
            "The SSH engine role that signs the key (required).",
        ),
        flag(
            "mount-point",
            Kind::Str,
            "Mount of the SSH secrets engine (default ssh).",
        ),
        flag(
            "public-key-path",
            Kind::Str,
            "Public key to sign (default: the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub, id_rsa.pub).",
        ),
        flag(
            "private-key-path",
            Kind::Str,
            "Private key ssh uses (default: the public key's path without .pub).",
        ),
        flag(
            "valid-principals",
            Kind::Str,
            "Principals to ask for (default: USER).",
        ),
        flag(
            "strict-host-key-checking",
            Kind::Str,
            "Passed to ssh as StrictHostKeyChecking (yes, no, ask, accept-new).",
        ),
        flag(
            "user-known-hosts-file",
            Kind::Str,
            "Passed to ssh as UserKnownHostsFile.",
        ),
        flag(
            "ssh-executable",
            Kind::Str,
            "The ssh program (default ssh).",
        ),
    ],
};

fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(h)) => h.join(rest),
        _ => PathBuf::from(path),
    }
}

/// A certificate file that is removed when dropped.
struct TempCert(PathBuf);

impl Drop for TempCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_private(path: &Path, body: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(body.as_bytes())
}

/// `tresor ssh`.
pub fn ssh(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&SSH, args)?;
    min_args(&p.args, 1)?;
    match p.str("mode").unwrap_or("ca") {
        "ca" => {}
        "otp" => {
            return Err(CliError::Usage(
                "-mode=otp is not supported by tresor ssh: use -mode=ca".into(),
            ));
        }
        other => {
            return Err(CliError::Usage(format!(
                "unknown -mode {other:?}: expected ca"
            )));
        }
    }
    let role = p
        .str("role")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| CliError::Usage("-role is required".into()))?
        .to_string();
    let mount = sanitize_path(p.str("mount-point").unwrap_or("ssh"));
    let (user, host) = match p.args[0].rsplit_once('@') {
        Some((u, h)) => (u.to_string(), h.to_string()),
        None => (
            cli.ctx.env.var("USER").ok_or_else(|| {
                CliError::Usage("no user given (USER@HOST) and $USER is not set".into())
            })?,
            p.args[0].clone(),
        ),
    };
    if user.is_empty() || host.is_empty() {
        return Err(CliError::Usage(format!("{:?} is not USER@HOST", p.args[0])));
    }
    let home = cli.ctx.env.home_dir();
    let public_path = match p.str("public-key-path") {
        Some(path) => expand_home(path, home.as_deref()),
        None => ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
            .iter()
            .filter_map(|n| home.as_ref().map(|h| h.join(".ssh").join(n)))
            .find(|c| c.exists())
            .ok_or_else(|| {
                CliError::Local("no public key found in ~/.ssh: use -public-key-path".into())
            })?,
    };
    let public_key = std::fs::read_to_string(&public_path)
        .map_err(|e| CliError::Local(format!("reading {}: {e}", public_path.display())))?;
    let private_path = match p.str("private-key-path") {
        Some(path) => expand_home(path, home.as_deref()),
        None => {
            let s = public_path.to_string_lossy();
            PathBuf::from(s.strip_suffix(".pub").unwrap_or(&s))
        }
    };
    let principals = p
        .str("valid-principals")
        .map(str::to_string)
        .unwrap_or_else(|| user.clone());

    let client = cli.client(&p)?;
    let path = format!("{mount}/sign/{role}");
    let secret = client
        .write(
            &path,
            json!({"public_key": public_key.trim(), "valid_principals": principals, "cert_type": "user"}),
        )
        .map_err(|e| remote(format_args!("signing key with {path}"), e))?;
    let signed = secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get("signed_key"))
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Remote(format!("no signed_key in the answer of {path}")))?;

    let mut nonce = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let cert_path = std::env::temp_dir().join(format!(
        "tresor-ssh-{}-{:016x}-cert.pub",
        std::process::id(),
        u64::from_le_bytes(nonce)
    ));
    write_private(&cert_path, signed)
        .map_err(|e| CliError::Local(format!("writing {}: {e}", cert_path.display())))?;
    let cert = TempCert(cert_path);

    let mut cmd = Command::new(p.str("ssh-executable").unwrap_or("ssh"));
    cmd.arg("-i")
        .arg(&private_path)
        .arg("-o")
        .arg(format!("CertificateFile={}", cert.0.display()))
        .args(["-o", "IdentitiesOnly=yes"]);
    if let Some(v) = p.str("strict-host-key-checking") {
        cmd.arg("-o").arg(format!("StrictHostKeyChecking={v}"));
    }
    if let Some(v) = p.str("user-known-hosts-file") {
        cmd.arg("-o").arg(format!(
            "UserKnownHostsFile={}",
            expand_home(v, home.as_deref()).display()
        ));
    }
    cmd.arg(format!("{user}@{host}")).args(&p.args[1..]);
    let status = cmd
        .status()
        .map_err(|e| CliError::Local(format!("running ssh: {e}")))?;
    drop(cert);
    Ok(status.code().unwrap_or(255))
}
