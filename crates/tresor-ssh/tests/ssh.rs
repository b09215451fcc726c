//! The SSH engine in-process, through a real dev core on in-memory storage and a clock the
//! tests set: the CA (generate, import, rotate through issuers), roles, signing and what the
//! certificate says, issue, the OTP mode (including racing verifications), and bad input
//! that stores nothing.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use ssh_key::certificate::CertType;
use ssh_key::{Certificate, PublicKey};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_physical::InmemBackend;
use tresor_sdk::Operation::{self, Delete, List, Read, Update};
use tresor_sdk::clock::ManualClock;

const T0: i64 = 1_800_000_000;
const ED_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDRwA/cR5fBWS59OL5Zd3yDfQ6qEdo1s7WH9aMpUeMGu user@host";

struct T {
    core: Core,
    root: String,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

async fn setup() -> T {
    let clock = Arc::new(ManualClock::at(T0));
    let cfg = CoreConfig {
        clock: clock.clone(),
        ..Default::default()
    };
    let mut core = Core::new(Arc::new(InmemBackend::new()), cfg);
    let c = clock.clone();
    core.register_engine(
        "ssh",
        Arc::new(move |_| Ok(tresor_ssh::backend_with_clock(c.clone()))),
    );
    let (_key, root) = core.init_dev(Some("root".into())).await.expect("dev init");
    let t = T {
        core,
        root: root.to_string(),
    };
    t.data(Update, "sys/mounts/ssh", json!({"type": "ssh"}))
        .await;
    t
}

impl T {
    async fn req_as(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: Option<&str>,
    ) -> Result<CoreResponse, CoreError> {
        self.core
            .handle(CoreRequest::new(op, path, obj(data), token))
            .await
    }

    async fn req(&self, op: Operation, path: &str, data: Value) -> Result<CoreResponse, CoreError> {
        self.req_as(op, path, data, Some(&self.root)).await
    }

    async fn data(&self, op: Operation, path: &str, data: Value) -> Map<String, Value> {
        match self.req(op, path, data).await {
            Ok(r) => r.response.and_then(|r| r.data).unwrap_or_default(),
            Err(e) => panic!("{op:?} {path} failed: {e}"),
        }
    }

    async fn err(&self, op: Operation, path: &str, data: Value) -> String {
        match self.req(op, path, data).await {
            Ok(r) => panic!("{op:?} {path} succeeded: {:?}", r.response),
            Err(CoreError::InvalidRequest(m)) => m,
            Err(e) => panic!("{op:?} {path}: not a 400: {e:?}"),
        }
    }

    async fn sign(&self, role: &str, body: Value) -> Certificate {
        let d = self.data(Update, &format!("ssh/sign/{role}"), body).await;
        Certificate::from_openssh(d["signed_key"].as_str().unwrap().trim()).unwrap()
    }
}

async fn with_ca_and_role(t: &T) -> String {
    let d = t
        .data(Update, "ssh/config/ca", json!({"key_type": "ed25519"}))
        .await;
    t.data(
        Update,
        "ssh/roles/dev",
        json!({
            "key_type": "ca", "allow_user_certificates": true, "allowed_users": "alice,bob",
            "default_user": "alice", "ttl": "1h", "max_ttl": "2h",
            "default_extensions": {"permit-pty": ""},
            "allowed_extensions": "permit-pty,permit-port-forwarding",
        }),
    )
    .await;
    d["public_key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_signed_user_certificate_says_what_the_role_allows() {
    let t = setup().await;
    let ca_pub = with_ca_and_role(&t).await;
    let ca = PublicKey::from_openssh(ca_pub.trim()).unwrap();

    // public_key is served without a token, as plain text.
    let r = t
        .req_as(Read, "ssh/public_key", json!({}), None)
        .await
        .unwrap();
    let raw = r.response.unwrap().raw.unwrap();
    assert_eq!(raw.content_type, "text/plain");
    assert_eq!(String::from_utf8(raw.body).unwrap(), ca_pub);

    let cert = t
        .sign(
            "dev",
            json!({"public_key": ED_KEY, "valid_principals": "bob"}),
        )
        .await;
    assert_eq!(cert.cert_type(), CertType::User);
    assert_eq!(cert.valid_principals(), ["bob"]);
    assert_eq!(cert.valid_after(), (T0 - 30) as u64);
    assert_eq!(cert.valid_before(), (T0 + 3600) as u64);
    assert!(cert.extensions().contains_key("permit-pty"));
    assert_eq!(cert.extensions().len(), 1);
    assert!(
        cert.key_id().starts_with("vault-root-"),
        "{}",
        cert.key_id()
    );
    let fp = ca.fingerprint(Default::default());
    cert.validate_at(T0 as u64, [&fp]).unwrap();

    // Defaults: the default user; a longer ttl is capped at max_ttl.
    let cert = t
        .sign("dev", json!({"public_key": ED_KEY, "ttl": "10h", "extensions": {"permit-port-forwarding": ""}}))
        .await;
    assert_eq!(cert.valid_principals(), ["alice"]);
    assert_eq!(cert.valid_before(), (T0 + 7200) as u64);
    assert!(cert.extensions().contains_key("permit-port-forwarding"));
    assert!(!cert.extensions().contains_key("permit-pty"));

    // Refusals, each a clear 400.
    let e = t
        .err(
            Update,
            "ssh/sign/dev",
            json!({"public_key": ED_KEY, "valid_principals": "carol"}),
        )
        .await;
    assert_eq!(e, "carol is not a valid value for valid_principals");
    let e = t
        .err(
            Update,
            "ssh/sign/dev",
            json!({"public_key": ED_KEY, "cert_type": "host"}),
        )
        .await;
    assert_eq!(e, "cert_type 'host' is not allowed by role");
    let e = t
        .err(
            Update,
            "ssh/sign/dev",
            json!({"public_key": ED_KEY, "extensions": {"permit-X11-forwarding": ""}}),
        )
        .await;
    assert!(e.contains("not on allowed list"), "{e}");
    let e = t
        .err(Update, "ssh/sign/nope", json!({"public_key": ED_KEY}))
        .await;
    assert_eq!(e, "Unknown role: nope");
    let e = t
        .err(
            Update,
            "ssh/sign/dev",
            json!({"public_key": "ssh-ed25519 AAAA!!bad"}),
        )
        .await;
    assert!(e.starts_with("failed to parse public_key"), "{e}");
}

#[tokio::test]
async fn rsa_cas_sign_with_sha2_and_refuse_small_user_keys() {
    let t = setup().await;
    t.data(
        Update,
        "ssh/config/ca",
        json!({"key_type": "rsa", "key_bits": 2048}),
    )
    .await;
    t.data(
        Update,
        "ssh/roles/r",
        json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*",
               "allowed_user_key_lengths": {"ed25519": 256, "rsa": [3072]}}),
    )
    .await;
    let cert = t
        .sign("r", json!({"public_key": ED_KEY, "valid_principals": "x"}))
        .await;
    assert_eq!(cert.signature().algorithm().as_str(), "rsa-sha2-256");
    cert.verify_signature().unwrap();
    // issue: an ECDSA key is not in the role's allowed lengths; ed25519 is.
    let e = t
        .err(
            Update,
            "ssh/issue/r",
            json!({"key_type": "ec", "valid_principals": "x"}),
        )
        .await;
    assert!(e.contains("key type ec is not allowed"), "{e}");
    let d = t
        .data(
            Update,
            "ssh/issue/r",
            json!({"key_type": "ed25519", "valid_principals": "x"}),
        )
        .await;
    assert_eq!(d["private_key_type"], "ed25519");
    assert!(
        d["private_key"]
            .as_str()
            .unwrap()
            .contains("OPENSSH PRIVATE KEY")
    );
    let cert = Certificate::from_openssh(d["signed_key"].as_str().unwrap().trim()).unwrap();
    let private = ssh_key::PrivateKey::from_openssh(d["private_key"].as_str().unwrap()).unwrap();
    assert_eq!(cert.public_key(), private.public_key().key_data());
    // The weak-signer setting is refused, and nothing is stored.
    let e = t
        .err(Update, "ssh/roles/weak", json!({"key_type": "ca", "allow_user_certificates": true, "algorithm_signer": "ssh-rsa"}))
        .await;
    assert!(e.contains("SHA-1"), "{e}");
    let r = t.req(Read, "ssh/roles/weak", json!({})).await.unwrap();
    assert!(r.response.and_then(|r| r.data).is_none());
}

#[tokio::test]
async fn host_certificates_and_a_ca_rotation_through_issuers() {
    let t = setup().await;
    let first = t
        .data(Update, "ssh/config/ca", json!({"key_type": "ed25519"}))
        .await;
    t.data(
        Update,
        "ssh/roles/hosts",
        json!({"key_type": "ca", "allow_host_certificates": true, "allowed_domains": "example.com",
               "allow_subdomains": true}),
    )
    .await;
    let cert = t
        .sign("hosts", json!({"public_key": ED_KEY, "cert_type": "host", "valid_principals": "web.example.com"}))
        .await;
    assert_eq!(cert.cert_type(), CertType::Host);
    let e = t
        .err(
            Update,
            "ssh/sign/hosts",
            json!({"public_key": ED_KEY, "cert_type": "host", "valid_principals": "example.com"}),
        )
        .await;
    assert!(e.contains("not a valid value"), "{e}");

    // A second issuer, not default yet: signing still uses the first.
    let second = t
        .data(
            Update,
            "ssh/issuers/import/next",
            json!({"key_type": "ecdsa-sha2-nistp256"}),
        )
        .await;
    assert_eq!(second["issuer_name"], "next");
    let list = t.data(List, "ssh/issuers", json!({})).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    let cert = t
        .sign(
            "hosts",
            json!({"public_key": ED_KEY, "cert_type": "host", "valid_principals": "a.example.com"}),
        )
        .await;
    assert_eq!(cert.signature_key().algorithm().as_str(), "ssh-ed25519");
    // Switch the default by name; the old issuer still reads, then is deleted.
    t.data(Update, "ssh/config/issuers", json!({"default": "next"}))
        .await;
    let cert = t
        .sign(
            "hosts",
            json!({"public_key": ED_KEY, "cert_type": "host", "valid_principals": "a.example.com"}),
        )
        .await;
    assert_eq!(
        cert.signature_key().algorithm().as_str(),
        "ecdsa-sha2-nistp256"
    );
    let old = first["issuer_id"].as_str().unwrap();
    let d = t.data(Read, &format!("ssh/issuer/{old}"), json!({})).await;
    assert_eq!(d["public_key"], first["public_key"]);
    t.data(Delete, &format!("ssh/issuer/{old}"), json!({}))
        .await;
    let e = t.err(Read, &format!("ssh/issuer/{old}"), json!({})).await;
    assert!(e.contains("unable to find issuer"), "{e}");
    // Deleting config/ca removes every issuer.
    t.data(Delete, "ssh/config/ca", json!({})).await;
    let e = t.err(Read, "ssh/public_key", json!({})).await;
    assert_eq!(e, "no default issuer currently configured");
}

#[tokio::test]
async fn otps_verify_once_even_when_verifications_race() {
    let t = Arc::new(setup().await);
    t.data(
        Update,
        "ssh/roles/otp",
        json!({"key_type": "otp", "default_user": "ubuntu", "cidr_list": "127.0.0.0/8", "exclude_cidr_list": "127.0.0.9/32"}),
    )
    .await;
    let e = t
        .err(Update, "ssh/creds/otp", json!({"ip": "10.0.0.1"}))
        .await;
    assert_eq!(e, "Error validating IP: IP does not belong to role");
    let e = t
        .err(Update, "ssh/creds/otp", json!({"ip": "127.0.0.9"}))
        .await;
    assert_eq!(e, "Error validating IP: IP does not belong to role");
    let r = t
        .req(Update, "ssh/creds/otp", json!({"ip": "127.0.0.1"}))
        .await
        .unwrap();
    assert!(!r.lease_id.is_empty());
    let d = r.response.unwrap().data.unwrap();
    assert_eq!(d["username"], "ubuntu");
    assert_eq!(d["port"], 22);
    let otp = d["key"].as_str().unwrap().to_owned();

    let lookup = t
        .data(Update, "ssh/lookup", json!({"ip": "127.0.0.1"}))
        .await;
    assert_eq!(lookup["roles"], json!(["otp"]));

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let t = t.clone();
        let otp = otp.clone();
        tasks.push(tokio::spawn(async move {
            t.req_as(Update, "ssh/verify", json!({"otp": otp}), None)
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(r) => {
                ok += 1;
                let d = r.response.unwrap().data.unwrap();
                assert_eq!(d["username"], "ubuntu");
                assert_eq!(d["role_name"], "otp");
            }
            Err(e) => assert_eq!(e.to_string(), "OTP not found"),
        }
    }
    assert_eq!(ok, 1, "exactly one verification spends the OTP");

    // Zero-address roles accept any address.
    t.data(Update, "ssh/config/zeroaddress", json!({"roles": "otp"}))
        .await;
    t.data(Update, "ssh/creds/otp", json!({"ip": "10.0.0.1"}))
        .await;
    let e = t
        .err(Update, "ssh/config/zeroaddress", json!({"roles": "nope"}))
        .await;
    assert_eq!(e, "Unknown role: nope");
}

#[tokio::test]
async fn bad_config_and_roles_are_refused_and_store_nothing() {
    let t = setup().await;
    for (body, want) in [
        (json!({"key_type": "dsa"}), "unknown key_type"),
        (json!({"key_type": "rsa", "key_bits": 1024}), "weak RSA key"),
        (
            json!({"private_key": "not a key"}),
            "not a PEM-encoded private key",
        ),
        (json!({"public_key": ED_KEY}), "missing private_key"),
    ] {
        let e = t.err(Update, "ssh/config/ca", body).await;
        assert!(e.contains(want), "{e}");
    }
    let list = t.data(List, "ssh/issuers", json!({})).await;
    assert_eq!(list["keys"], json!([]));
    for (body, want) in [
        (json!({"key_type": "dynamic"}), "no longer supported"),
        (
            json!({"key_type": "ca"}),
            "Either 'allow_user_certificates'",
        ),
        (json!({"key_type": "otp"}), "missing default_user"),
        (
            json!({"key_type": "otp", "default_user": "u", "cidr_list": "not-a-cidr"}),
            "cidr_list",
        ),
        (
            json!({"key_type": "ca", "allow_user_certificates": true, "ttl": "2h", "max_ttl": "1h"}),
            "max_ttl",
        ),
        (
            json!({"key_type": "ca", "allow_user_certificates": true, "allowed_user_key_lengths": {"dsa": 1024}}),
            "unknown key type",
        ),
    ] {
        let e = t.err(Update, "ssh/roles/bad", body).await;
        assert!(e.contains(want), "{e}");
    }
    let roles = t.req(List, "ssh/roles", json!({})).await.unwrap();
    let keys = roles
        .response
        .and_then(|r| r.data)
        .map(|d| d["keys"].clone());
    assert!(keys.is_none() || keys == Some(json!([])), "{keys:?}");
}

/// Vault's `config/ca`: a write while a CA is configured is refused (the CA a script set up
/// is never silently replaced; delete it first), and `generate_signing_key=true` next to a
/// key to import is a contradiction, refused. Neither changes the CA.
#[tokio::test]
async fn config_ca_refuses_a_second_ca_and_a_contradiction() {
    let t = setup().await;
    let e = t
        .err(
            Update,
            "ssh/config/ca",
            json!({"generate_signing_key": true, "public_key": ED_KEY}),
        )
        .await;
    assert!(
        e.contains("must not be set when generate_signing_key"),
        "{e}"
    );
    let list = t.data(List, "ssh/issuers", json!({})).await;
    assert_eq!(list["keys"], json!([]));
    let first = t
        .data(Update, "ssh/config/ca", json!({"key_type": "ed25519"}))
        .await;
    let e = t
        .err(Update, "ssh/config/ca", json!({"key_type": "ed25519"}))
        .await;
    assert!(e.contains("already configured"), "{e}");
    let d = t.data(Read, "ssh/config/ca", json!({})).await;
    assert_eq!(d["public_key"], first["public_key"]);
    let list = t.data(List, "ssh/issuers", json!({})).await;
    assert_eq!(list["keys"].as_array().unwrap().len(), 1);
    // After a delete (answered with no body, as Vault's 204), a new CA can be configured.
    let r = t.req(Delete, "ssh/config/ca", json!({})).await.unwrap();
    assert!(r.response.is_none(), "{:?}", r.response);
    let second = t
        .data(Update, "ssh/config/ca", json!({"key_type": "ed25519"}))
        .await;
    assert_ne!(second["public_key"], first["public_key"]);
    // An imported key is answered with no body (Vault's 204); the key is the CA.
    t.req(Delete, "ssh/config/ca", json!({})).await.unwrap();
    let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBMx0l6Yp8ktL5Y3Uy9M+8tSDhYj1q7x0hVGg1oG0mRm\n-----END PRIVATE KEY-----\n";
    let r = t
        .req(
            Update,
            "ssh/config/ca",
            json!({"private_key": pem, "generate_signing_key": false}),
        )
        .await
        .unwrap();
    assert!(r.response.is_none(), "{:?}", r.response);
    let d = t.data(Read, "ssh/config/ca", json!({})).await;
    assert!(
        d["public_key"]
            .as_str()
            .unwrap()
            .starts_with("ssh-ed25519 ")
    );
}

/// `serial_number` is the certificate's serial as Vault writes it: lowercase hex without
/// leading zeros (one serial in sixteen starts with a zero nibble; a hundred signatures make
/// a padded form all but certain to show).
#[tokio::test]
async fn serial_numbers_are_vaults_unpadded_hex() {
    let t = setup().await;
    t.data(Update, "ssh/config/ca", json!({"key_type": "ed25519"}))
        .await;
    t.data(
        Update,
        "ssh/roles/r",
        json!({"key_type": "ca", "allow_user_certificates": true, "allowed_users": "*"}),
    )
    .await;
    for _ in 0..100 {
        let d = t
            .data(
                Update,
                "ssh/sign/r",
                json!({"public_key": ED_KEY, "valid_principals": "x"}),
            )
            .await;
        let cert = Certificate::from_openssh(d["signed_key"].as_str().unwrap().trim()).unwrap();
        assert_eq!(d["serial_number"], format!("{:x}", cert.serial()));
    }
}

/// A role written the way hvac's `create_role` sends it: every field, the removed
/// dynamic-key ones (`key`, `admin_user`, `key_bits`, `install_script`, `key_option_specs`)
/// included, empty strings for booleans and nulls for maps. It is stored as asked and
/// answered with no body (Vault's 204), not with warnings about the legacy fields.
#[tokio::test]
async fn a_role_as_hvac_sends_it_is_accepted_quietly() {
    let t = setup().await;
    let body = json!({
        "key": "", "admin_user": "", "default_user": "ubuntu", "cidr_list": "10.0.0.0/8",
        "exclude_cidr_list": "", "port": 22, "key_type": "otp", "key_bits": 1024,
        "install_script": "", "allowed_users": "", "allowed_users_template": "",
        "allowed_domains": "", "key_option_specs": "", "ttl": "", "max_ttl": "",
        "allowed_critical_options": "", "allowed_extensions": "",
        "default_critical_options": null, "default_extensions": null,
        "allow_user_certificates": "", "allow_host_certificates": false,
        "allow_bare_domains": false, "allow_subdomains": false, "allow_user_key_ids": false,
        "key_id_format": "", "allowed_user_key_lengths": null, "algorithm_signer": ""
    });
    let r = t.req(Update, "ssh/roles/otp", body.clone()).await.unwrap();
    assert!(r.response.is_none(), "{:?}", r.response);
    let d = t.data(Read, "ssh/roles/otp", json!({})).await;
    assert_eq!(d["key_type"], "otp");
    assert_eq!(d["cidr_list"], "10.0.0.0/8");
    assert_eq!(d["port"], 22);
    let mut ca = body;
    ca["key_type"] = json!("ca");
    ca["allow_user_certificates"] = json!(true);
    ca["allowed_users"] = json!("*");
    let r = t.req(Update, "ssh/roles/ca", ca).await.unwrap();
    assert!(r.response.is_none(), "{:?}", r.response);
    let d = t.data(Read, "ssh/roles/ca", json!({})).await;
    assert_eq!(d["allow_user_certificates"], true);
    assert_eq!(d["ttl"], 0);
}
