//! Engine operations that send one prepared request over and over: `transit-encrypt`
//! (aes256-gcm96, a 64-byte plaintext), `transit-encrypt-batch` (1,000 such items per
//! request), `transit-sign` (an ed25519 key by default) and `ssh-sign` (a user certificate for
//! one Ed25519 public key made at setup).
//!
//! Setup enables the engine at a path unique to the run and makes the key (transit) or the CA
//! and a role (ssh); cleanup disables the mount, which deletes them. The request body is built
//! once: the server does the same work each time (a fresh nonce, a fresh signature).

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};
use tresor_client::MountInput;

use super::{BoxFuture, Kind, SetupContext, Workload};
use crate::client::{Api, Target};
use crate::error::BenchError;

/// The `transit-encrypt` registry entry.
pub const TRANSIT_ENCRYPT: Kind = Kind {
    name: "transit-encrypt",
    aliases: &["transit_encrypt"],
    summary: "encrypt 64 bytes with an aes256-gcm96 transit key (key_type, plaintext_bytes)",
    needs_token: true,
    check_config: check_transit,
    setup: setup_encrypt,
};

/// The `transit-encrypt-batch` registry entry.
pub const TRANSIT_ENCRYPT_BATCH: Kind = Kind {
    name: "transit-encrypt-batch",
    aliases: &[],
    summary: "encrypt a batch of 1,000 64-byte items in one request (batch_size, key_type)",
    needs_token: true,
    check_config: check_transit,
    setup: setup_encrypt_batch,
};

/// The `transit-sign` registry entry.
pub const TRANSIT_SIGN: Kind = Kind {
    name: "transit-sign",
    aliases: &["transit_sign"],
    summary: "sign 64 bytes with a transit key (key_type = \"ed25519\")",
    needs_token: true,
    check_config: check_transit,
    setup: setup_sign,
};

/// The `ssh-sign` registry entry.
pub const SSH_SIGN: Kind = Kind {
    name: "ssh-sign",
    aliases: &["ssh_sign"],
    summary: "sign one Ed25519 user key with an SSH CA role (ca_key_type = \"ed25519\")",
    needs_token: true,
    check_config: check_ssh,
    setup: setup_ssh,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransitConfig {
    #[serde(default)]
    key_type: Option<String>,
    #[serde(default = "default_plaintext_bytes")]
    plaintext_bytes: usize,
    #[serde(default = "default_batch")]
    batch_size: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SshConfig {
    #[serde(default = "default_ca_key_type")]
    ca_key_type: String,
}

fn default_plaintext_bytes() -> usize {
    64
}

fn default_batch() -> usize {
    1000
}

fn default_ca_key_type() -> String {
    "ed25519".into()
}

fn check_transit(v: &Value) -> Result<(), String> {
    let c: TransitConfig = super::parse_config(v)?;
    if c.plaintext_bytes == 0 || c.plaintext_bytes > 1 << 20 {
        return Err("plaintext_bytes must be 1 to 1048576".into());
    }
    if c.batch_size == 0 || c.batch_size > 100_000 {
        return Err("batch_size must be 1 to 100000".into());
    }
    Ok(())
}

fn check_ssh(v: &Value) -> Result<(), String> {
    let c: SshConfig = super::parse_config(v)?;
    match c.ca_key_type.as_str() {
        "ed25519" | "ec" | "rsa" => Ok(()),
        other => Err(format!(
            "ca_key_type must be ed25519, ec or rsa, not {other:?}"
        )),
    }
}

/// A mount with one request sent over and over.
struct Repeat {
    mount: String,
    uri: Uri,
    body: Bytes,
    token: HeaderValue,
}

#[async_trait::async_trait]
impl Workload for Repeat {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        let mut req = target.request(
            Method::POST,
            self.uri.clone(),
            Some(&self.token),
            self.body.clone(),
        );
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        req
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        api.check(
            &format!("disabling {}/", self.mount),
            api.client().unmount(&self.mount),
        )
        .await
    }
}

fn token_of(ctx: &SetupContext) -> Result<HeaderValue, BenchError> {
    ctx.api
        .token()
        .ok_or_else(|| BenchError::NoToken(ctx.name.clone()))?
        .header()
}

fn uri(path: String) -> Result<Uri, BenchError> {
    path.parse().map_err(|_| BenchError::Server {
        context: "building a request".into(),
        message: format!("invalid path {path:?}"),
    })
}

/// Enables `engine` at a unique mount and runs `prepare` (POSTs); disables it again if
/// preparing fails.
async fn mount_with(
    ctx: &SetupContext,
    engine: &str,
    prepare: &[(&str, Value)],
) -> Result<String, BenchError> {
    let mount = ctx.unique.clone();
    let input = MountInput {
        engine: engine.into(),
        description: "tresor bench (removed when the run ends)".into(),
        ..MountInput::default()
    };
    ctx.api
        .check(
            &format!("{}: enabling {engine} at {mount}/", ctx.name),
            ctx.api.client().mount(&mount, &input),
        )
        .await?;
    for (path, body) in prepare {
        let full = format!("{mount}/{path}");
        if let Err(e) = ctx
            .api
            .expect_ok(
                &format!("{}: writing {full}", ctx.name),
                Method::POST,
                &full,
                Some(body),
                None,
            )
            .await
        {
            let _ = ctx.api.client().unmount(&mount).await;
            return Err(e);
        }
    }
    Ok(mount)
}

fn plaintext(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn setup_transit(
    ctx: SetupContext,
    default_type: &'static str,
    op: &'static str,
    batch: bool,
) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: TransitConfig = super::config_of(&ctx)?;
        let key_type = cfg
            .key_type
            .clone()
            .unwrap_or_else(|| default_type.to_owned());
        let token = token_of(&ctx)?;
        let mount = mount_with(
            &ctx,
            "transit",
            &[("keys/bench", json!({"type": key_type}))],
        )
        .await?;
        let pt = plaintext(cfg.plaintext_bytes);
        let body = if batch {
            let items: Vec<Value> = (0..cfg.batch_size)
                .map(|_| json!({"plaintext": pt}))
                .collect();
            json!({"batch_input": items})
        } else if op == "sign" {
            json!({"input": pt})
        } else {
            json!({"plaintext": pt})
        };
        Ok(Box::new(Repeat {
            uri: uri(format!("/v1/{mount}/{op}/bench"))?,
            mount,
            body: Bytes::from(body.to_string()),
            token,
        }) as Box<dyn Workload>)
    })
}

fn setup_encrypt(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    setup_transit(ctx, "aes256-gcm96", "encrypt", false)
}

fn setup_encrypt_batch(
    ctx: SetupContext,
) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    setup_transit(ctx, "aes256-gcm96", "encrypt", true)
}

fn setup_sign(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    setup_transit(ctx, "ed25519", "sign", false)
}

/// An Ed25519 public key in OpenSSH's one-line form, made from fresh random bytes (only the
/// public half is ever sent; no private key is needed to have it signed).
fn ssh_public_key() -> Result<String, String> {
    use aws_lc_rs::signature::KeyPair as _;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| "cannot generate an Ed25519 key".to_owned())?;
    let kp = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| "cannot read the generated Ed25519 key".to_owned())?;
    let mut blob = Vec::new();
    for part in [b"ssh-ed25519".as_slice(), kp.public_key().as_ref()] {
        blob.extend_from_slice(&(part.len() as u32).to_be_bytes());
        blob.extend_from_slice(part);
    }
    Ok(format!(
        "ssh-ed25519 {} tresor-bench",
        base64::engine::general_purpose::STANDARD.encode(blob)
    ))
}

fn setup_ssh(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: SshConfig = super::config_of(&ctx)?;
        let token = token_of(&ctx)?;
        let public_key = ssh_public_key().map_err(|message| BenchError::WorkloadConfig {
            workload: ctx.name.clone(),
            message,
        })?;
        let ca = match cfg.ca_key_type.as_str() {
            "rsa" => json!({"generate_signing_key": true, "key_type": "ssh-rsa", "key_bits": 2048}),
            "ec" => json!({"generate_signing_key": true, "key_type": "ec", "key_bits": 256}),
            _ => json!({"generate_signing_key": true, "key_type": "ssh-ed25519"}),
        };
        let role = json!({
            "key_type": "ca",
            "allow_user_certificates": true,
            "allowed_users": "bench",
            "default_user": "bench",
            "ttl": "30m",
        });
        let mount = mount_with(&ctx, "ssh", &[("config/ca", ca), ("roles/bench", role)]).await?;
        Ok(Box::new(Repeat {
            uri: uri(format!("/v1/{mount}/sign/bench"))?,
            mount,
            body: Bytes::from(
                json!({"public_key": public_key, "valid_principals": "bench"}).to_string(),
            ),
            token,
        }) as Box<dyn Workload>)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked() {
        assert!(check_transit(&json!({})).is_ok());
        assert!(check_transit(&json!({"batch_size": 0})).is_err());
        assert!(check_transit(&json!({"plaintext_bytes": 0})).is_err());
        assert!(check_transit(&json!({"nope": 1})).is_err());
        assert!(check_ssh(&json!({"ca_key_type": "dsa"})).is_err());
        assert!(check_ssh(&json!({})).is_ok());
    }

    #[test]
    fn the_ssh_key_is_an_openssh_ed25519_line() {
        let k = ssh_public_key().unwrap();
        let mut parts = k.split(' ');
        assert_eq!(parts.next(), Some("ssh-ed25519"));
        let blob = base64::engine::general_purpose::STANDARD
            .decode(parts.next().unwrap())
            .unwrap();
        assert_eq!(blob.len(), 4 + 11 + 4 + 32);
        assert_eq!(&blob[4..15], b"ssh-ed25519");
    }
}

/// The `jwt-login` registry entry.
pub const JWT_LOGIN: Kind = Kind {
    name: "jwt-login",
    aliases: &["jwt_auth"],
    summary: "log in to a jwt auth mount with one ES256 JWT signed by a key made at setup",
    needs_token: true,
    check_config: check_jwt,
    setup: setup_jwt,
};

fn check_jwt(v: &Value) -> Result<(), String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Empty {}
    let _: Empty = super::parse_config(v)?;
    Ok(())
}

/// An ES256 key pair: (SPKI public key as PEM, a signed JWT for `sub = bench`, valid 2 hours).
fn es256_jwt() -> Result<(String, String), String> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let b64u = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| "cannot generate a P-256 key".to_owned())?;
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
        .map_err(|_| "cannot read the generated P-256 key".to_owned())?;
    // SubjectPublicKeyInfo for id-ecPublicKey on prime256v1, then the uncompressed point.
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(kp.public_key().as_ref());
    let body = base64::engine::general_purpose::STANDARD.encode(&spki);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = b64u.encode(br#"{"alg":"ES256","typ":"JWT"}"#);
    let claims = b64u.encode(
        json!({"sub": "bench", "aud": "tresor-bench", "iat": now, "nbf": now, "exp": now + 7200})
            .to_string(),
    );
    let signing_input = format!("{header}.{claims}");
    let sig = kp
        .sign(&rng, signing_input.as_bytes())
        .map_err(|_| "cannot sign the JWT".to_owned())?;
    Ok((
        pem,
        format!("{signing_input}.{}", b64u.encode(sig.as_ref())),
    ))
}

fn setup_jwt(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let _: Value = super::config_of(&ctx)?;
        let (pem, jwt) = es256_jwt().map_err(|message| BenchError::WorkloadConfig {
            workload: ctx.name.clone(),
            message,
        })?;
        let mount = format!("auth/{}", ctx.unique);
        let enable =
            json!({"type": "jwt", "description": "tresor bench (removed when the run ends)"});
        ctx.api
            .expect_ok(
                &format!("{}: enabling jwt at {mount}/", ctx.name),
                Method::POST,
                &format!("sys/auth/{}", ctx.unique),
                Some(&enable),
                None,
            )
            .await?;
        let prepared = async {
            ctx.api
                .expect_ok(
                    &format!("{}: configuring {mount}/", ctx.name),
                    Method::POST,
                    &format!("{mount}/config"),
                    Some(&json!({"jwt_validation_pubkeys": [pem], "jwt_supported_algs": ["ES256"]})),
                    None,
                )
                .await?;
            ctx.api
                .expect_ok(
                    &format!("{}: writing {mount}/role/bench", ctx.name),
                    Method::POST,
                    &format!("{mount}/role/bench"),
                    Some(&json!({"role_type": "jwt", "bound_audiences": ["tresor-bench"], "user_claim": "sub", "token_policies": ["default"], "token_ttl": "1h"})),
                    None,
                )
                .await
        }
        .await;
        if let Err(e) = prepared {
            let _ = ctx
                .api
                .expect_ok(
                    "disabling",
                    Method::DELETE,
                    &format!("sys/auth/{}", ctx.unique),
                    None,
                    None,
                )
                .await;
            return Err(e);
        }
        Ok(Box::new(JwtLogin {
            unique: ctx.unique.clone(),
            uri: uri(format!("/v1/{mount}/login"))?,
            body: Bytes::from(json!({"role": "bench", "jwt": jwt}).to_string()),
        }) as Box<dyn Workload>)
    })
}

/// `jwt-login` after setup: the same login each request (JWT logins are not single-use).
struct JwtLogin {
    unique: String,
    uri: Uri,
    body: Bytes,
}

#[async_trait::async_trait]
impl Workload for JwtLogin {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        let mut req = target.request(Method::POST, self.uri.clone(), None, self.body.clone());
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        req
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        api.expect_ok(
            &format!("disabling auth/{}/", self.unique),
            Method::DELETE,
            &format!("sys/auth/{}", self.unique),
            None,
            None,
        )
        .await
        .map(|_| ())
    }
}
