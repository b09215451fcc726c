//! `pki-issue` and `pki-sign`: the PKI secrets engine as a certificate authority under load.
//!
//! Setup enables a fresh `pki` engine at a path unique to the run, tunes its max lease TTL so a
//! ten-year root fits, generates an internal root CA (EC P-256, the cheapest signer, so the
//! figures measure issuance rather than the CA's signature), and writes one role `bench` that
//! allows names under `domain` (subdomains only) with the chosen key type and `no_store` flag.
//! Cleanup disables the mount, which deletes the CA, the role and every stored certificate.
//!
//! `pki-issue` asks for a certificate with a common name no other request of the run uses
//! (`w<worker>-<seq>.<domain>`), so the server generates a key pair and signs every time; with
//! `key_type = "rsa"` that is RSA key generation, which bounds the rate. `pki-sign` generates one
//! P-256 key and CSR during setup (with rcgen on aws-lc-rs; the private key is zeroized when
//! setup returns) and posts that CSR to `sign/bench` on every request: the server verifies the
//! CSR's signature, checks it against the role, signs and (unless `no_store`) stores.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};
use tresor_client::MountInput;

use super::{BoxFuture, Kind, SetupContext, Workload};
use crate::client::{Api, Target};
use crate::error::BenchError;

/// The `pki-issue` registry entry.
pub const ISSUE: Kind = Kind {
    name: "pki-issue",
    aliases: &["pki_issue"],
    summary: "issue a certificate (key_type = \"ec\", key_bits = 256 | rsa 2048, no_store = false)",
    needs_token: true,
    check_config: check_issue,
    setup: setup_issue,
};

/// The `pki-sign` registry entry.
pub const SIGN: Kind = Kind {
    name: "pki-sign",
    aliases: &["pki_sign"],
    summary: "sign a P-256 CSR made once at setup with sign/:role (no_store = false)",
    needs_token: true,
    check_config: check_sign,
    setup: setup_sign,
};

/// The role every PKI workload writes and uses.
pub const ROLE: &str = "bench";

/// The mount's max lease TTL: room for the ten-year root.
const MOUNT_MAX_TTL: &str = "87600h";

/// `pki-issue` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueConfig {
    /// The key type the server generates for each certificate: `ec` or `rsa`.
    #[serde(default = "default_key_type")]
    key_type: String,
    /// Key size: 256, 384 or 521 for `ec` (NIST curves), 2048, 3072 or 4096 for `rsa`; 0 picks
    /// the type's default (P-256, RSA-2048).
    #[serde(default)]
    key_bits: u32,
    /// Issue without storing the certificate (the role's `no_store`).
    #[serde(default)]
    no_store: bool,
    /// The domain certificates are issued under.
    #[serde(default = "default_domain")]
    domain: String,
    /// The TTL each certificate asks for.
    #[serde(default = "default_ttl")]
    ttl: String,
}

/// `pki-sign` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignConfig {
    /// Sign without storing the certificate (the role's `no_store`).
    #[serde(default)]
    no_store: bool,
    /// The domain the CSR's name is under.
    #[serde(default = "default_domain")]
    domain: String,
    /// The TTL each certificate asks for.
    #[serde(default = "default_ttl")]
    ttl: String,
}

fn default_key_type() -> String {
    "ec".into()
}

fn default_domain() -> String {
    "bench.example.com".into()
}

fn default_ttl() -> String {
    "1h".into()
}

/// The effective key bits for a key type, or why the pair is not allowed.
fn key_bits(key_type: &str, bits: u32) -> Result<u32, String> {
    match (key_type, bits) {
        ("ec", 0) => Ok(256),
        ("ec", b @ (256 | 384 | 521)) => Ok(b),
        ("rsa", 0) => Ok(2048),
        ("rsa", b @ (2048 | 3072 | 4096)) => Ok(b),
        ("ec", b) => Err(format!("key_bits {b} is not an ec size (256, 384 or 521)")),
        ("rsa", b) => Err(format!(
            "key_bits {b} is not an rsa size (2048, 3072 or 4096)"
        )),
        (t, _) => Err(format!("key_type {t:?} is not supported (ec or rsa)")),
    }
}

/// A domain is a dot-separated list of lowercase hostname labels (it goes into JSON and
/// certificate names unescaped).
fn check_domain(domain: &str) -> Result<(), String> {
    let ok = !domain.is_empty()
        && domain.len() <= 200
        && domain.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "domain {domain:?} must be lowercase hostname labels separated by dots"
        ))
    }
}

fn check_ttl(ttl: &str) -> Result<(), String> {
    crate::options::parse_duration("ttl", ttl)
        .map_err(|_| format!("ttl {ttl:?} is not a duration such as \"1h\""))
        .and_then(|d| {
            if d.is_zero() {
                Err("ttl must be longer than zero".into())
            } else {
                Ok(())
            }
        })
}

fn check_issue(v: &Value) -> Result<(), String> {
    let c: IssueConfig = super::parse_config(v)?;
    key_bits(&c.key_type, c.key_bits)?;
    check_domain(&c.domain)?;
    check_ttl(&c.ttl)
}

fn check_sign(v: &Value) -> Result<(), String> {
    let c: SignConfig = super::parse_config(v)?;
    check_domain(&c.domain)?;
    check_ttl(&c.ttl)
}

/// Enables `pki` at `mount` and tunes its max lease TTL.
async fn enable(api: &Api, name: &str, mount: &str) -> Result<(), BenchError> {
    let input = MountInput {
        engine: "pki".into(),
        description: "tresor bench (removed when the run ends)".into(),
        ..MountInput::default()
    };
    api.check(
        &format!("{name}: enabling pki at {mount}/"),
        api.client().mount(mount, &input),
    )
    .await?;
    api.check(
        &format!("{name}: tuning {mount}/ (max_lease_ttl = {MOUNT_MAX_TTL})"),
        api.client()
            .tune_mount(mount, json!({ "max_lease_ttl": MOUNT_MAX_TTL })),
    )
    .await
}

/// Disables `mount`, deleting the CA and every stored certificate.
async fn disable(api: &Api, mount: &str) -> Result<(), BenchError> {
    api.check(&format!("disabling {mount}/"), api.client().unmount(mount))
        .await
}

/// The body of `roles/bench`.
fn role_body(domain: &str, key_type: &str, key_bits: u32, no_store: bool) -> Value {
    json!({
        "allowed_domains": [domain],
        "allow_subdomains": true,
        "allow_bare_domains": false,
        "key_type": key_type,
        "key_bits": key_bits,
        "no_store": no_store,
        "generate_lease": false,
        "ttl": "1h",
        "max_ttl": "24h",
    })
}

/// Generates the root CA and writes the role, on a mount that is already enabled.
async fn prepare(ctx: &SetupContext, mount: &str, role: &Value) -> Result<(), BenchError> {
    ctx.api
        .expect_ok(
            &format!("{}: generating a root CA in {mount}/", ctx.name),
            Method::POST,
            &format!("{mount}/root/generate/internal"),
            Some(&json!({
                "common_name": format!("{} root", ctx.unique),
                "key_type": "ec",
                "key_bits": 256,
                "ttl": MOUNT_MAX_TTL,
            })),
            None,
        )
        .await?;
    ctx.api
        .expect_ok(
            &format!("{}: writing role {ROLE} in {mount}/", ctx.name),
            Method::POST,
            &format!("{mount}/roles/{ROLE}"),
            Some(role),
            None,
        )
        .await
        .map(|_| ())
}

/// Enables the mount and prepares it; disables it again if anything fails.
async fn set_up_mount(ctx: &SetupContext, role: &Value) -> Result<String, BenchError> {
    let mount = ctx.unique.clone();
    enable(&ctx.api, &ctx.name, &mount).await?;
    if let Err(e) = prepare(ctx, &mount, role).await {
        let _ = disable(&ctx.api, &mount).await;
        return Err(e);
    }
    Ok(mount)
}

fn caller_header(ctx: &SetupContext) -> Result<HeaderValue, BenchError> {
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

fn json_post(target: &Target, uri: Uri, token: &HeaderValue, body: Bytes) -> Request<Full<Bytes>> {
    let mut req = target.request(Method::POST, uri, Some(token), body);
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    req
}

/// `pki-issue` after setup.
struct PkiIssue {
    mount: String,
    uri: Uri,
    domain: String,
    ttl: String,
    token: HeaderValue,
}

impl PkiIssue {
    /// The common name of one request: unique within the run.
    fn common_name(&self, worker: usize, seq: u64) -> String {
        format!("w{worker}-{seq}.{}", self.domain)
    }

    fn body(&self, worker: usize, seq: u64) -> Bytes {
        let body = json!({
            "common_name": self.common_name(worker, seq),
            "ttl": self.ttl,
        });
        Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
    }
}

fn setup_issue(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: IssueConfig = super::config_of(&ctx)?;
        let bits = key_bits(&cfg.key_type, cfg.key_bits).map_err(|message| {
            BenchError::WorkloadConfig {
                workload: ctx.name.clone(),
                message,
            }
        })?;
        let token = caller_header(&ctx)?;
        let role = role_body(&cfg.domain, &cfg.key_type, bits, cfg.no_store);
        let mount = set_up_mount(&ctx, &role).await?;
        Ok(Box::new(PkiIssue {
            uri: uri(format!("/v1/{mount}/issue/{ROLE}"))?,
            mount,
            domain: cfg.domain,
            ttl: cfg.ttl,
            token,
        }) as Box<dyn Workload>)
    })
}

#[async_trait::async_trait]
impl Workload for PkiIssue {
    fn request(&self, target: &Target, worker: usize, seq: u64) -> Request<Full<Bytes>> {
        json_post(
            target,
            self.uri.clone(),
            &self.token,
            self.body(worker, seq),
        )
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        disable(api, &self.mount).await
    }
}

/// A P-256 key and a CSR for `common_name` (also its DNS SAN), in PEM. The key is dropped
/// (and zeroized) here: only the CSR leaves.
fn p256_csr(common_name: &str) -> Result<String, String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("generating a P-256 key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec![common_name.to_owned()])
        .map_err(|e| format!("csr parameters: {e}"))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(|e| format!("building the csr: {e}"))
}

/// `pki-sign` after setup.
struct PkiSign {
    mount: String,
    uri: Uri,
    /// `{"csr": ..., "common_name": ..., "ttl": ...}`, the same for every request.
    body: Bytes,
    token: HeaderValue,
}

fn sign_body(csr: &str, common_name: &str, ttl: &str) -> Bytes {
    let body = json!({ "csr": csr, "common_name": common_name, "ttl": ttl });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

fn setup_sign(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: SignConfig = super::config_of(&ctx)?;
        let token = caller_header(&ctx)?;
        let common_name = format!("sign.{}", cfg.domain);
        let csr = p256_csr(&common_name).map_err(|message| BenchError::WorkloadConfig {
            workload: ctx.name.clone(),
            message,
        })?;
        let role = role_body(&cfg.domain, "ec", 256, cfg.no_store);
        let mount = set_up_mount(&ctx, &role).await?;
        Ok(Box::new(PkiSign {
            uri: uri(format!("/v1/{mount}/sign/{ROLE}"))?,
            mount,
            body: sign_body(&csr, &common_name, &cfg.ttl),
            token,
        }) as Box<dyn Workload>)
    })
}

#[async_trait::async_trait]
impl Workload for PkiSign {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        json_post(target, self.uri.clone(), &self.token, self.body.clone())
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        disable(api, &self.mount).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use x509_parser::prelude::FromDer;

    use super::*;
    use crate::client::TlsOptions;

    fn target() -> Target {
        Target::new(
            "http://127.0.0.1:8200",
            &TlsOptions::default(),
            Duration::from_secs(1),
        )
        .unwrap()
    }

    fn body_of(req: Request<Full<Bytes>>) -> (http::request::Parts, Value) {
        let (parts, body) = req.into_parts();
        let bytes = collect_body(body);
        (parts, serde_json::from_slice(&bytes).unwrap())
    }

    /// Reads a `Full` body without a runtime (it is ready at once).
    fn collect_body(body: Full<Bytes>) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(body.collect()).unwrap().to_bytes()
    }

    #[test]
    fn issue_config_defaults_and_limits() {
        let c: IssueConfig = super::super::parse_config(&Value::Null).unwrap();
        assert_eq!(
            (c.key_type.as_str(), c.key_bits, c.no_store),
            ("ec", 0, false)
        );
        assert_eq!(key_bits(&c.key_type, c.key_bits), Ok(256));
        assert_eq!(key_bits("rsa", 0), Ok(2048));
        assert_eq!(key_bits("ec", 384), Ok(384));
        assert!(key_bits("ec", 2048).unwrap_err().contains("not an ec size"));
        assert!(
            key_bits("rsa", 1024)
                .unwrap_err()
                .contains("not an rsa size")
        );
        assert!(key_bits("dsa", 0).unwrap_err().contains("\"dsa\""));
        assert!(
            check_issue(&json!({"key_type": "rsa", "key_bits": 2048, "no_store": true})).is_ok()
        );
        assert!(
            check_issue(&json!({"key_type": "rsa", "key_bits": 256}))
                .unwrap_err()
                .contains("rsa")
        );
        assert!(
            check_issue(&json!({"domain": "Evil.COM"}))
                .unwrap_err()
                .contains("domain")
        );
        assert!(check_issue(&json!({"domain": "a..b"})).is_err());
        assert!(
            check_issue(&json!({"ttl": "soon"}))
                .unwrap_err()
                .contains("ttl")
        );
        assert!(check_issue(&json!({"ttl": "0s"})).is_err());
        // pki-sign has no key choice: its CSR is P-256.
        assert!(check_sign(&json!({"no_store": true})).is_ok());
        assert!(
            check_sign(&json!({"key_type": "rsa"}))
                .unwrap_err()
                .contains("key_type")
        );
    }

    #[test]
    fn the_role_carries_key_type_bits_and_no_store() {
        let r = role_body("bench.example.com", "rsa", 2048, true);
        assert_eq!(r["allowed_domains"], json!(["bench.example.com"]));
        assert_eq!(r["allow_subdomains"], json!(true));
        assert_eq!(r["allow_bare_domains"], json!(false));
        assert_eq!(r["key_type"], json!("rsa"));
        assert_eq!(r["key_bits"], json!(2048));
        assert_eq!(r["no_store"], json!(true));
        assert_eq!(r["generate_lease"], json!(false));
        let r = role_body("bench.example.com", "ec", 256, false);
        assert_eq!(
            (r["key_type"].clone(), r["key_bits"].clone()),
            (json!("ec"), json!(256))
        );
        assert_eq!(r["no_store"], json!(false));
    }

    #[test]
    fn issue_requests_post_a_unique_name_under_the_domain() {
        let w = PkiIssue {
            mount: "tresor-bench-x-0".into(),
            uri: uri(format!("/v1/tresor-bench-x-0/issue/{ROLE}")).unwrap(),
            domain: "bench.example.com".into(),
            ttl: "1h".into(),
            token: HeaderValue::from_static("t"),
        };
        let t = target();
        let mut names = std::collections::HashSet::new();
        for worker in 0..3 {
            for seq in 0..50 {
                let (parts, body) = body_of(w.request(&t, worker, seq));
                assert_eq!(parts.method, Method::POST);
                assert_eq!(parts.uri.path(), "/v1/tresor-bench-x-0/issue/bench");
                assert_eq!(parts.headers["x-vault-token"], "t");
                assert_eq!(parts.headers["content-type"], "application/json");
                assert_eq!(body["ttl"], json!("1h"));
                let cn = body["common_name"].as_str().unwrap().to_owned();
                assert!(cn.ends_with(".bench.example.com"), "{cn}");
                assert!(names.insert(cn), "a common name repeated");
            }
        }
    }

    #[test]
    fn sign_requests_post_a_verifiable_p256_csr() {
        let cn = "sign.bench.example.com";
        let csr = p256_csr(cn).unwrap();
        let w = PkiSign {
            mount: "m".into(),
            uri: uri(format!("/v1/m/sign/{ROLE}")).unwrap(),
            body: sign_body(&csr, cn, "1h"),
            token: HeaderValue::from_static("t"),
        };
        let (parts, body) = body_of(w.request(&target(), 4, 9));
        assert_eq!(parts.method, Method::POST);
        assert_eq!(parts.uri.path(), "/v1/m/sign/bench");
        assert_eq!(parts.headers["content-type"], "application/json");
        assert_eq!(body["common_name"], json!(cn));
        assert_eq!(body["ttl"], json!("1h"));
        // The CSR is PEM, signed by its own P-256 key, with the name as CN and DNS SAN.
        let pem_text = body["csr"].as_str().unwrap();
        assert!(pem_text.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).unwrap();
        let (_, req) =
            x509_parser::certification_request::X509CertificationRequest::from_der(&pem.contents)
                .unwrap();
        req.verify_signature()
            .expect("the csr's self-signature verifies");
        let info = &req.certification_request_info;
        assert_eq!(
            info.subject_pki.algorithm.algorithm.to_id_string(),
            "1.2.840.10045.2.1",
            "id-ecPublicKey"
        );
        let curve = info
            .subject_pki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        assert_eq!(curve.as_deref(), Some("1.2.840.10045.3.1.7"), "prime256v1");
        let subject_cn = info
            .subject
            .iter_common_name()
            .next()
            .and_then(|a| a.as_str().ok());
        assert_eq!(subject_cn, Some(cn));
        // Every request sends the same CSR.
        let (_, again) = body_of(w.request(&target(), 0, 0));
        assert_eq!(again, body);
        // A second CSR has a fresh key.
        assert_ne!(p256_csr(cn).unwrap(), csr);
    }
}
