//! The method in-process on in-memory storage: the certificate-role API, logins from a
//! presented chain, CRLs, OCSP against a responder on 127.0.0.1, and renewal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_sdk::clock::ManualClock;
use tresor_sdk::{
    Auth, Caller, LogicalBackend, LogicalError, MountView, Operation, Request, Response, SecretRef,
    Storage,
};

use crate::testpki::{self, Ca, Mode, NOW, aia_ocsp, ca, leaf, responder};

#[derive(Default)]
struct Mem(Mutex<BTreeMap<String, Vec<u8>>>);

#[async_trait::async_trait]
impl Storage for Mem {
    async fn get(&self, key: &str) -> tresor_sdk::Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> tresor_sdk::Result<()> {
        self.0.lock().unwrap().insert(key.to_owned(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> tresor_sdk::Result<()> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> tresor_sdk::Result<Vec<String>> {
        let mut out: Vec<String> = self
            .0
            .lock()
            .unwrap()
            .keys()
            .filter_map(|k| k.strip_prefix(prefix))
            .map(|rest| match rest.split_once('/') {
                Some((dir, _)) => format!("{dir}/"),
                None => rest.to_owned(),
            })
            .collect();
        out.dedup();
        Ok(out)
    }
}

struct T {
    b: Arc<dyn LogicalBackend>,
    s: Arc<Mem>,
    clock: Arc<ManualClock>,
}

fn t() -> T {
    let clock = Arc::new(ManualClock::at(NOW));
    T {
        b: crate::backend_with_clock(clock.clone()),
        s: Arc::new(Mem::default()),
        clock,
    }
}

impl T {
    fn req(&self, op: Operation, path: &str, data: Value, certs: &[&[u8]]) -> Request {
        Request {
            operation: op,
            path: path.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            storage: self.s.clone(),
            mount: Arc::new(MountView {
                mount_point: "auth/cert/".into(),
                mount_type: "cert".into(),
                mount_accessor: "auth_cert_1".into(),
                default_lease_ttl: Duration::ZERO,
                max_lease_ttl: Duration::ZERO,
                options: Default::default(),
                system: None,
            }),
            caller: Caller::default(),
            secret: None,
            connection: Arc::new(tresor_sdk::Connection {
                remote_addr: Some("127.0.0.1".into()),
                peer_certificates: certs.iter().map(|c| c.to_vec()).collect(),
            }),
            headers: Vec::new(),
            raw_body: None,
            deadline: None,
        }
    }
    async fn call(
        &self,
        op: Operation,
        path: &str,
        data: Value,
    ) -> tresor_sdk::Result<Option<Response>> {
        self.b.handle(self.req(op, path, data, &[])).await
    }
    async fn write(&self, path: &str, data: Value) {
        let r = self.call(Operation::Update, path, data).await;
        assert!(r.is_ok(), "write {path}: {r:?}");
    }
    async fn read(&self, path: &str) -> Map<String, Value> {
        self.call(Operation::Read, path, json!({}))
            .await
            .unwrap()
            .and_then(|r| r.data)
            .unwrap_or_else(|| panic!("nothing at {path}"))
    }
    async fn login(&self, certs: &[&[u8]], data: Value) -> Result<Auth, String> {
        self.b
            .handle(self.req(Operation::Update, "login", data, certs))
            .await
            .map(|r| r.and_then(|r| r.auth).expect("an auth block"))
            .map_err(|e| e.to_string())
    }
    async fn renew(&self, a: &Auth) -> Result<Option<Response>, String> {
        let mut req = self.req(Operation::Update, "login", json!({}), &[]);
        req.secret = Some(SecretRef {
            lease_id: "auth/cert/login".into(),
            secret_type: "auth".into(),
            internal_data: a.internal_data.clone(),
            increment: None,
        });
        self.b.renew_auth(req).await.map_err(|e| e.to_string())
    }
}

/// A root, a "users" intermediate under it, and alice's client certificate from the
/// intermediate.
struct People {
    root: Ca,
    users: Ca,
    alice: testpki::Leaf,
}

fn people() -> People {
    let root = ca("Example Root", None, |_| {});
    let users = ca("Example Users CA", Some(&root), |p| {
        p.serial_number = Some(rcgen::SerialNumber::from(0x5005u64));
    });
    let alice = leaf("alice", &users, 0x1001, |p| {
        p.subject_alt_names = vec![
            rcgen::SanType::Rfc822Name("alice@example.org".try_into().unwrap()),
            rcgen::SanType::DnsName("alice.people.example.org".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://example.org/people/alice".try_into().unwrap()),
        ];
        p.distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "engineering");
    });
    People { root, users, alice }
}

#[tokio::test]
async fn certificate_roles_are_written_read_listed_and_deleted() {
    let t = t();
    let p = people();
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "token_policies": "people, Dev", "token_ttl": "1h",
               "allowed_common_names": ["a*"], "ocsp_servers_override": ["http://127.0.0.1:1/ocsp"]}),
    )
    .await;
    let r = t.read("certs/people").await;
    assert_eq!(r["certificate"], json!(p.users.pem));
    assert_eq!(r["display_name"], "people");
    assert_eq!(r["token_policies"], json!(["dev", "people"]));
    assert_eq!(r["policies"], json!(["dev", "people"]), "legacy name shown");
    assert_eq!(r["token_ttl"], 3600);
    assert_eq!(r["allowed_common_names"], json!(["a*"]));
    assert_eq!(r["ocsp_enabled"], false);
    assert_eq!(r["ocsp_max_retries"], 4);
    // An update keeps what it does not send; legacy names are accepted.
    t.write(
        "certs/people",
        json!({"display_name": "People", "policies": "ops", "lease": 60}),
    )
    .await;
    let r = t.read("certs/people").await;
    assert_eq!(r["certificate"], json!(p.users.pem));
    assert_eq!(r["display_name"], "People");
    assert_eq!(r["token_policies"], json!(["ops"]));
    assert_eq!(r["token_ttl"], 60);
    assert_eq!(r["allowed_common_names"], json!(["a*"]));
    t.write("certs/other", json!({"certificate": p.root.pem}))
        .await;
    let l = t
        .call(Operation::List, "certs", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.data.unwrap()["keys"], json!(["other", "people"]));
    t.call(Operation::Delete, "certs/other", json!({}))
        .await
        .unwrap();
    assert!(
        t.call(Operation::Read, "certs/other", json!({}))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn bad_role_input_is_refused_and_nothing_is_stored() {
    let t = t();
    let server_only = leaf("web", &people().users, 7, |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    let cases = [
        (json!({}), "missing certificate"),
        (json!({"certificate": "not a pem"}), "certificate"),
        (
            json!({"certificate": server_only.pem}),
            "client authentication",
        ),
        (
            json!({"certificate": people().users.pem, "required_extensions": ["nocolon"]}),
            "required_extensions",
        ),
        (
            json!({"certificate": people().users.pem, "allowed_metadata_extensions": ["a.b"]}),
            "allowed_metadata_extensions",
        ),
        (
            json!({"certificate": people().users.pem, "ocsp_servers_override": ["ldap://x"]}),
            "ocsp_servers_override",
        ),
        (
            json!({"certificate": people().users.pem, "ocsp_ca_certificates": "junk"}),
            "ocsp_ca_certificates",
        ),
        (
            json!({"certificate": people().users.pem, "token_ttl": "2h", "token_max_ttl": "1h"}),
            "token_ttl",
        ),
        (
            json!({"certificate": people().users.pem, "token_ttl": "soon"}),
            "token_ttl",
        ),
    ];
    for (body, want) in cases {
        let e = t
            .call(Operation::Update, "certs/bad", body.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(e, LogicalError::InvalidRequest(_)),
            "{body}: {e:?}"
        );
        assert!(e.to_string().contains(want), "{body}: {e}");
    }
    assert!(t.s.0.lock().unwrap().is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_certificate_from_the_trusted_intermediate_logs_in_with_the_mapped_policies() {
    let t = t();
    let p = people();
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "token_policies": ["people"], "token_ttl": "30m",
               "display_name": "people-ca"}),
    )
    .await;
    let a = t.login(&[&p.alice.der], json!({})).await.unwrap();
    assert_eq!(a.policies, ["people"]);
    assert_eq!(a.ttl, Duration::from_secs(1800));
    assert_eq!(a.display_name, "people-ca");
    assert!(a.renewable);
    assert_eq!(a.metadata["cert_name"], "people");
    assert_eq!(a.metadata["common_name"], "alice");
    assert_eq!(a.metadata["serial_number"], "4097", "0x1001 in decimal");
    assert!(a.metadata["subject_key_id"].contains(':'));
    assert!(a.metadata["authority_key_id"].contains(':'));
    let alias = a.alias.as_ref().unwrap();
    assert_eq!(alias.name, "alice");
    assert!(
        alias.metadata.is_empty(),
        "alias metadata is off by default"
    );
    // The chain may also carry the intermediate (and the root), in any order.
    t.login(&[&p.alice.der, &p.root.der, &p.users.der], json!({}))
        .await
        .unwrap();
    // Trusting the root instead: the intermediate must then be presented.
    t.write("certs/people", json!({"certificate": p.root.pem}))
        .await;
    let e = t.login(&[&p.alice.der], json!({})).await.unwrap_err();
    assert!(
        e.starts_with("invalid certificate or no client certificate supplied"),
        "{e}"
    );
    t.login(&[&p.alice.der, &p.users.der], json!({}))
        .await
        .unwrap();
    // Identity alias metadata when configured.
    t.write("config", json!({"enable_identity_alias_metadata": true}))
        .await;
    let a = t
        .login(&[&p.alice.der, &p.users.der], json!({}))
        .await
        .unwrap();
    assert_eq!(a.alias.unwrap().metadata["common_name"], "alice");
}

#[tokio::test]
async fn logins_without_or_with_a_foreign_or_unfit_certificate_are_refused() {
    let t = t();
    let p = people();
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "token_policies": "people"}),
    )
    .await;
    let e = t.login(&[], json!({})).await.unwrap_err();
    assert_eq!(e, "no client certificate found");
    let other = ca("Other CA", None, |_| {});
    let mallory = leaf("alice", &other, 0x1001, |_| {});
    let e = t.login(&[&mallory.der], json!({})).await.unwrap_err();
    assert_eq!(e, "invalid certificate or no client certificate supplied");
    // Even when the foreign chain is presented with it.
    let e = t
        .login(&[&mallory.der, &other.der], json!({}))
        .await
        .unwrap_err();
    assert_eq!(e, "invalid certificate or no client certificate supplied");
    // A server-only certificate from the trusted CA.
    let web = leaf("web", &p.users, 9, |c| {
        c.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    });
    let e = t.login(&[&web.der], json!({})).await.unwrap_err();
    assert!(e.contains("client authentication"), "{e}");
    // Expired (the clock moves past its notAfter).
    t.clock.set(NOW + 2 * 365 * 86_400);
    let e = t.login(&[&p.alice.der], json!({})).await.unwrap_err();
    assert!(e.contains("expired"), "{e}");
    t.clock.set(NOW);
    // Garbage bytes as a certificate.
    let e = t.login(&[b"not der"], json!({})).await.unwrap_err();
    assert!(e.starts_with("invalid certificate"), "{e}");
}

#[tokio::test]
async fn constraints_and_named_roles_pick_the_role() {
    let t = t();
    let p = people();
    let cases: &[(Value, bool)] = &[
        (json!({"allowed_common_names": "al*"}), true),
        (json!({"allowed_common_names": "bob"}), false),
        (json!({"allowed_names": "*.people.example.org"}), true),
        (json!({"allowed_names": "bob*"}), false),
        (
            json!({"allowed_dns_sans": "alice.people.example.org"}),
            true,
        ),
        (json!({"allowed_dns_sans": "*.example.com"}), false),
        (json!({"allowed_email_sans": "*@example.org"}), true),
        (json!({"allowed_email_sans": "*@example.com"}), false),
        (
            json!({"allowed_uri_sans": "spiffe://example.org/people/*"}),
            true,
        ),
        (
            json!({"allowed_uri_sans": "spiffe://example.org/robots/*"}),
            false,
        ),
        (
            json!({"allowed_organizational_units": "engineering,sales"}),
            true,
        ),
        (json!({"allowed_organizational_units": "sales"}), false),
        // Key usage extension (2.5.29.15) as hex of its DER value; a string extension that is
        // absent.
        (json!({"required_extensions": "hex:2.5.29.15:03*"}), true),
        (json!({"required_extensions": "1.2.3.4:*"}), false),
    ];
    for (constraint, ok) in cases {
        let mut body = constraint.as_object().unwrap().clone();
        body.insert("certificate".into(), json!(p.users.pem));
        t.call(Operation::Delete, "certs/people", json!({}))
            .await
            .unwrap();
        t.write("certs/people", Value::Object(body)).await;
        let r = t.login(&[&p.alice.der], json!({})).await;
        assert_eq!(r.is_ok(), *ok, "{constraint}: {r:?}");
        if !ok {
            assert!(r.unwrap_err().contains("does not"), "{constraint}");
        }
    }
    // Two roles trust the CA: the first by name wins unless one is named.
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "required_extensions": [],
        "token_policies": "people"}),
    )
    .await;
    t.write("certs/admins", json!({"certificate": p.users.pem, "allowed_common_names": "root*", "token_policies": "admin"}))
        .await;
    t.write(
        "certs/all",
        json!({"certificate": p.users.pem, "token_policies": "all"}),
    )
    .await;
    let a = t.login(&[&p.alice.der], json!({})).await.unwrap();
    assert_eq!(
        a.metadata["cert_name"], "all",
        "admins refuses alice; all comes first"
    );
    let a = t
        .login(&[&p.alice.der], json!({"name": "People"}))
        .await
        .unwrap();
    assert_eq!(a.policies, ["people"]);
    let e = t
        .login(&[&p.alice.der], json!({"name": "admins"}))
        .await
        .unwrap_err();
    assert!(e.contains("allowed_common_names"), "{e}");
    let e = t
        .login(&[&p.alice.der], json!({"name": "nobody"}))
        .await
        .unwrap_err();
    assert_eq!(e, "invalid certificate or no client certificate supplied");
}

#[tokio::test]
async fn a_trusted_leaf_logs_in_as_itself_only() {
    let t = t();
    let me = testpki::self_signed_leaf("robot");
    let twin = testpki::self_signed_leaf("robot");
    t.write(
        "certs/robot",
        json!({"certificate": me.pem, "token_policies": "robots"}),
    )
    .await;
    let a = t.login(&[&me.der], json!({})).await.unwrap();
    assert_eq!(a.policies, ["robots"]);
    let e = t.login(&[&twin.der], json!({})).await.unwrap_err();
    assert_eq!(e, "invalid certificate or no client certificate supplied");
}

#[tokio::test]
async fn metadata_extensions_are_reported() {
    let t = t();
    let root = ca("Root", None, |_| {});
    let utf8 = |s: &str| {
        let mut v = vec![0x0c, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    };
    let badge = leaf("carol", &root, 5, |p| {
        p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 4, 1, 99999, 1],
            utf8("badge-42"),
        )];
    });
    t.write(
        "certs/badges",
        json!({"certificate": root.pem, "allowed_metadata_extensions": "1.3.6.1.4.1.99999.1,1.2.3",
               "required_extensions": "1.3.6.1.4.1.99999.1:badge-*"}),
    )
    .await;
    let a = t.login(&[&badge.der], json!({})).await.unwrap();
    assert_eq!(a.metadata["1-3-6-1-4-1-99999-1"], "badge-42");
    assert!(!a.metadata.contains_key("1-2-3"));
}

#[tokio::test]
async fn crls_refuse_revoked_serials_anywhere_in_the_chain() {
    let t = t();
    let p = people();
    t.write("certs/people", json!({"certificate": p.root.pem}))
        .await;
    let chain: [&[u8]; 2] = [&p.alice.der, &p.users.der];
    t.login(&chain, json!({})).await.unwrap();
    // A CRL naming someone else changes nothing.
    t.write(
        "crls/users",
        json!({"crl": testpki::crl(&p.users, &[0x2002])}),
    )
    .await;
    let a = t.login(&chain, json!({})).await.unwrap();
    // Now alice's serial.
    t.write(
        "crls/users",
        json!({"crl": testpki::crl(&p.users, &[0x2002, 0x1001])}),
    )
    .await;
    let e = t.login(&chain, json!({})).await.unwrap_err();
    assert!(e.contains("revoked (CRL)"), "{e}");
    let r = t.read("crls/users").await;
    assert_eq!(r["serials"], json!({"4097": {}, "8194": {}}));
    // The token she got before is not renewed.
    let e = t.renew(&a).await.unwrap_err();
    assert!(e.contains("revoked"), "{e}");
    // The intermediate revoked by the root's CRL refuses the chain too.
    t.call(Operation::Delete, "crls/users", json!({}))
        .await
        .unwrap();
    t.login(&chain, json!({})).await.unwrap();
    t.write(
        "crls/root",
        json!({"crl": testpki::crl(&p.root, &[0x5005])}),
    )
    .await;
    let e = t.login(&chain, json!({})).await.unwrap_err();
    assert!(e.contains("revoked (CRL)"), "{e}");
    let l = t
        .call(Operation::List, "crls", json!({}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(l.data.unwrap()["keys"], json!(["root"]));
    t.call(Operation::Delete, "crls/root", json!({}))
        .await
        .unwrap();
    // DER in base64 is accepted; junk is not, and a URL is refused plainly.
    use base64::Engine as _;
    let pem = testpki::crl(&p.users, &[0x1001]);
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents;
    t.write(
        "crls/der",
        json!({"crl": base64::engine::general_purpose::STANDARD.encode(der)}),
    )
    .await;
    assert!(t.login(&chain, json!({})).await.is_err());
    for bad in [
        json!({"crl": "junk"}),
        json!({}),
        json!({"url": "http://127.0.0.1:1/crl"}),
    ] {
        assert!(
            t.call(Operation::Update, "crls/x", bad.clone())
                .await
                .is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn renewal_rechecks_the_role_the_policies_and_the_certificate() {
    let t = t();
    let p = people();
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "token_policies": "people", "token_ttl": "10m", "token_max_ttl": "1h"}),
    )
    .await;
    let a = t.login(&[&p.alice.der], json!({})).await.unwrap();
    let r = t.renew(&a).await.unwrap().unwrap().auth.unwrap();
    assert_eq!(r.ttl, Duration::from_secs(600));
    assert_eq!(r.max_ttl, Duration::from_secs(3600));
    // A constraint the certificate no longer meets.
    t.write("certs/people", json!({"allowed_common_names": "bob"}))
        .await;
    assert!(t.renew(&a).await.unwrap_err().contains("not renewing"));
    t.write("certs/people", json!({"allowed_common_names": []}))
        .await;
    t.renew(&a).await.unwrap();
    // Expired certificate.
    t.clock.set(NOW + 2 * 365 * 86_400);
    assert!(t.renew(&a).await.unwrap_err().contains("expired"));
    t.clock.set(NOW);
    // Changed policies.
    t.write("certs/people", json!({"token_policies": "people,more"}))
        .await;
    assert!(
        t.renew(&a)
            .await
            .unwrap_err()
            .contains("policies have changed")
    );
    // The role is gone.
    t.call(Operation::Delete, "certs/people", json!({}))
        .await
        .unwrap();
    assert!(t.renew(&a).await.unwrap_err().contains("no longer exists"));
}

#[tokio::test]
async fn ocsp_good_revoked_and_failures() {
    let t = t();
    let p = people();
    let resp = responder(&p.users, Mode::Good).await;
    let alice = leaf("alice", &p.users, 0x77, |c| {
        c.custom_extensions = vec![aia_ocsp(&resp.url)]
    });
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "ocsp_enabled": true, "token_policies": "people"}),
    )
    .await;
    // The responder from the certificate's AIA says good.
    let a = t.login(&[&alice.der], json!({})).await.unwrap();
    assert_eq!(*resp.hits.lock().unwrap(), 1);
    // Revoked: refused, and so is renewal; fail-open does not help.
    *resp.mode.lock().unwrap() = Mode::Revoked;
    let e = t.login(&[&alice.der], json!({})).await.unwrap_err();
    assert!(e.contains("revoked (OCSP)"), "{e}");
    assert!(t.renew(&a).await.unwrap_err().contains("revoked"));
    t.write("certs/people", json!({"ocsp_fail_open": true}))
        .await;
    assert!(t.login(&[&alice.der], json!({})).await.is_err());
    // A forged answer, an unknown one, a stale one and a server error: refused when closed,
    // allowed when open.
    for mode in [
        Mode::ForgedSignature,
        Mode::Unknown,
        Mode::Stale,
        Mode::ServerError,
    ] {
        *resp.mode.lock().unwrap() = mode;
        t.write(
            "certs/people",
            json!({"ocsp_fail_open": false, "ocsp_max_retries": 0}),
        )
        .await;
        let e = t.login(&[&alice.der], json!({})).await.unwrap_err();
        assert!(e.contains("OCSP"), "{mode:?}: {e}");
        t.write("certs/people", json!({"ocsp_fail_open": true}))
            .await;
        t.login(&[&alice.der], json!({})).await.unwrap();
    }
    // Unreachable (a closed port) through the override.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/ocsp", closed.local_addr().unwrap());
    drop(closed);
    t.write(
        "certs/people",
        json!({"ocsp_fail_open": false, "ocsp_servers_override": [dead.clone()]}),
    )
    .await;
    let e = t.login(&[&alice.der], json!({})).await.unwrap_err();
    assert!(e.contains("OCSP check failed"), "{e}");
    // The override tries the next server; query-all needs every one to say good.
    *resp.mode.lock().unwrap() = Mode::Good;
    t.write(
        "certs/people",
        json!({"ocsp_servers_override": [dead.clone(), resp.url.clone()]}),
    )
    .await;
    t.login(&[&alice.der], json!({})).await.unwrap();
    t.write("certs/people", json!({"ocsp_query_all_servers": true}))
        .await;
    assert!(t.login(&[&alice.der], json!({})).await.is_err());
    t.write(
        "certs/people",
        json!({"ocsp_servers_override": [resp.url.clone()]}),
    )
    .await;
    t.login(&[&alice.der], json!({})).await.unwrap();
    // No responder at all: fail closed.
    let bare = leaf("bob", &p.users, 0x78, |_| {});
    t.write("certs/people", json!({"ocsp_servers_override": []}))
        .await;
    let e = t.login(&[&bare.der], json!({})).await.unwrap_err();
    assert!(e.contains("no OCSP responder"), "{e}");
}

/// A responder that cannot answer is asked again `ocsp_max_retries` times, capped at
/// `RETRY_CAP`: a count too large for the client's counter gets the cap, not zero retries.
#[tokio::test]
async fn ocsp_retries_follow_the_role_up_to_the_cap() {
    let t = t();
    let p = people();
    let resp = responder(&p.users, Mode::ServerError).await;
    let alice = leaf("alice", &p.users, 0x79, |c| {
        c.custom_extensions = vec![aia_ocsp(&resp.url)]
    });
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "ocsp_enabled": true, "ocsp_max_retries": 2}),
    )
    .await;
    assert!(t.login(&[&alice.der], json!({})).await.is_err());
    assert_eq!(*resp.hits.lock().unwrap(), 3);
    for huge in [
        u64::from(crate::ocsp::RETRY_CAP) + 1,
        1 << 32,
        i64::MAX as u64,
    ] {
        *resp.hits.lock().unwrap() = 0;
        t.write("certs/people", json!({"ocsp_max_retries": huge}))
            .await;
        assert!(t.login(&[&alice.der], json!({})).await.is_err());
        assert_eq!(
            *resp.hits.lock().unwrap(),
            crate::ocsp::RETRY_CAP + 1,
            "ocsp_max_retries {huge}"
        );
    }
}

#[tokio::test]
async fn ocsp_answers_signed_by_a_trusted_responder_certificate() {
    let t = t();
    let p = people();
    // A responder CA unrelated to the issuer signs the answers: trusted only when configured.
    let responder_ca = ca("OCSP Responder", None, |_| {});
    let resp = responder(&responder_ca, Mode::Good).await;
    let alice = leaf("alice", &p.users, 0x79, |c| {
        c.custom_extensions = vec![aia_ocsp(&resp.url)]
    });
    t.write(
        "certs/people",
        json!({"certificate": p.users.pem, "ocsp_enabled": true, "ocsp_max_retries": 0}),
    )
    .await;
    let e = t.login(&[&alice.der], json!({})).await.unwrap_err();
    assert!(e.contains("not signed"), "{e}");
    t.write(
        "certs/people",
        json!({"ocsp_ca_certificates": responder_ca.pem}),
    )
    .await;
    t.login(&[&alice.der], json!({})).await.unwrap();
}

#[tokio::test]
async fn help_and_config() {
    let t = t();
    for path in ["", "certs/x", "crls/x", "config", "login", "certs"] {
        let h =
            t.b.help(path)
                .unwrap_or_else(|| panic!("help for {path:?}"));
        assert!(!h["help"].as_str().unwrap().is_empty(), "{path}");
    }
    let r = t.read("config").await;
    assert_eq!(r["disable_binding"], false);
    assert_eq!(r["ocsp_cache_size"], 100);
    t.write(
        "config",
        json!({"disable_binding": true, "ocsp_cache_size": 10}),
    )
    .await;
    let r = t.read("config").await;
    assert_eq!(r["disable_binding"], true);
    assert_eq!(r["ocsp_cache_size"], 10);
    assert!(
        t.call(Operation::Update, "config", json!({"ocsp_cache_size": 1}))
            .await
            .is_err()
    );
    assert_eq!(
        t.b.special_paths().unauthenticated,
        vec!["login".to_string()]
    );
    assert_eq!(
        t.b.canonical_path("certs/People").as_deref(),
        Some("certs/people")
    );
}
