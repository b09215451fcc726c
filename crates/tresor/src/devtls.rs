//! `tresor server -dev-tls`: a throw-away CA and a server certificate it signed, written to a
//! directory of their own for the dev listener and for clients (`VAULT_CACERT`).
//!
//! The files are `vault-ca.pem` (the CA certificate, what clients trust), `vault-cert.pem`
//! and `vault-key.pem` (the server's certificate and key), the names Vault's `-dev-tls` uses.
//! The key is written readable by its owner only, in a directory only its owner can enter;
//! the CA's key is never written, so nothing else can be signed by that CA.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// The files of a generated dev TLS setup.
#[derive(Debug)]
pub struct DevTls {
    /// The directory holding them.
    pub dir: PathBuf,
    /// Whether the server made `dir` (a temporary directory, removed at shutdown).
    pub temporary: bool,
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl DevTls {
    /// Removes what [`generate`] wrote: the whole directory if it made it, else its files.
    pub fn remove(&self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            for f in [&self.ca_cert, &self.cert, &self.key] {
                let _ = std::fs::remove_file(f);
            }
        }
    }
}

/// Creates a directory only its owner may enter, under the system temporary directory.
fn temp_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    let base = std::env::temp_dir();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for attempt in 0..100u128 {
        let dir = base.join(format!(
            "tresor-tls{:x}",
            (seed ^ (u128::from(std::process::id()) << 64)).wrapping_add(attempt)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("creating {}", dir.display()));
            }
        }
    }
    anyhow::bail!(
        "could not create a directory for the dev TLS files under {}",
        base.display()
    )
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // An existing file keeps its old mode through `open`: set it.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// The names the server certificate is valid for: the loopback names and addresses, and the
/// listen host when it is a specific one.
fn names(listen_host: &str) -> Vec<SanType> {
    let mut sans = vec![
        SanType::DnsName("localhost".try_into().expect("a valid DNS name")),
        SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
        SanType::IpAddress("::1".parse().expect("an IPv6 address")),
    ];
    let host = listen_host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) if !ip.is_unspecified() && !ip.is_loopback() => sans.push(SanType::IpAddress(ip)),
        Ok(_) => {}
        Err(_) if host != "localhost" && !host.is_empty() => {
            if let Ok(name) = host.to_owned().try_into() {
                sans.push(SanType::DnsName(name));
            }
        }
        Err(_) => {}
    }
    sans
}

/// Generates the CA and the server certificate for a listener on `listen_host`, into `dir`
/// (created if missing) or a new temporary directory.
pub fn generate(dir: Option<&Path>, listen_host: &str) -> Result<DevTls> {
    let (dir, temporary) = match dir {
        Some(d) => {
            use std::os::unix::fs::DirBuilderExt as _;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)
                .with_context(|| format!("creating {}", d.display()))?;
            (d.to_path_buf(), false)
        }
        None => (temp_dir()?, true),
    };
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::minutes(1);

    let ca_key = KeyPair::generate().context("generating the dev CA key")?;
    let mut ca = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Tresor dev CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = now + time::Duration::days(365);
    let ca_cert = ca.self_signed(&ca_key).context("signing the dev CA")?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate().context("generating the dev server key")?;
    let mut server = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    server.distinguished_name = dn;
    server.subject_alt_names = names(listen_host);
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    server.use_authority_key_identifier_extension = true;
    server.not_before = not_before;
    server.not_after = now + time::Duration::days(365);
    let cert = server
        .signed_by(&key, &issuer)
        .context("signing the dev server certificate")?;

    let tls = DevTls {
        ca_cert: dir.join("vault-ca.pem"),
        cert: dir.join("vault-cert.pem"),
        key: dir.join("vault-key.pem"),
        dir,
        temporary,
    };
    write(&tls.ca_cert, &ca_cert.pem(), 0o644)?;
    write(
        &tls.cert,
        &format!("{}{}", cert.pem(), ca_cert.pem()),
        0o644,
    )?;
    write(&tls.key, &key.serialize_pem(), 0o600)?;
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_key_is_private_and_the_ca_key_is_not_written() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("certs");
        let tls = generate(Some(&dir), "127.0.0.1").unwrap();
        assert!(!tls.temporary);
        assert_eq!(mode(&tls.key), 0o600, "the server key is the owner's only");
        assert_eq!(mode(&dir), 0o700);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["vault-ca.pem", "vault-cert.pem", "vault-key.pem"]);
        // An existing, world-readable key file is restricted when it is replaced.
        std::fs::set_permissions(&tls.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = generate(Some(&dir), "127.0.0.1").unwrap();
        assert_eq!(mode(&again.key), 0o600);

        let tmp = generate(None, "0.0.0.0").unwrap();
        assert!(tmp.temporary);
        assert_eq!(mode(&tmp.dir), 0o700);
        assert_eq!(mode(&tmp.key), 0o600);
        tmp.remove();
        assert!(!tmp.dir.exists());
    }
}
