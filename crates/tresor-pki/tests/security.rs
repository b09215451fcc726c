//! Regression tests for the PKI findings of the security review (issue 10): each test
//! reproduces an attack and fails on the code before its fix.
//!
//! - Finding 9: `issue/:role`, `sign/:role` and `sign-verbatim[/:role]` take the issuer from
//!   the role, never from `issuer_ref` in the body (which would bypass ACLs written on
//!   `issuer/+/issue/...`).

mod common;

use common::{Harness, pem_der};
use serde_json::{Value, json};
use tresor_sdk::Operation;

async fn role(h: &Harness, name: &str, extra: Value) {
    let mut body = json!({"allow_any_name": true, "key_type": "ec", "ttl": "24h"});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    h.write(&format!("roles/{name}"), body).await;
}

// ---------------------------------------------------------------------------------------------
// Finding 9: issuer_ref in the body of issue/sign/sign-verbatim is ignored.

#[tokio::test]
async fn finding_9_issuer_ref_in_the_body_does_not_choose_the_issuer() {
    let h = Harness::new("pki/");
    let default = h.root("ec", 256).await;
    let default_pem = default["certificate"].as_str().unwrap().to_owned();
    let other = h
        .write(
            "issuers/generate/root/internal",
            json!({"common_name": "Other Root", "key_type": "ec", "issuer_name": "other", "ttl": "87600h"}),
        )
        .await;
    let other_id = other["issuer_id"].as_str().unwrap().to_owned();
    let other_pem = other["certificate"].as_str().unwrap().to_owned();
    assert_eq!(
        h.read("config/issuers").await["default"],
        default["issuer_id"]
    );
    role(&h, "r", json!({})).await;
    let csr_pem = {
        let key = tresor_pki::keys::PrivateKey::generate(
            tresor_pki::keys::KeySpec::resolve("ec", 256).unwrap(),
        )
        .unwrap();
        let name = tresor_pki::x509::Subject {
            common_name: "leaf.example.com".into(),
            ..Default::default()
        }
        .to_name()
        .unwrap();
        let der = tresor_pki::x509::build_csr(&name, &Default::default(), &key, false).unwrap();
        tresor_pki::pem::encode("CERTIFICATE REQUEST", &der)
    };
    let signed_by = |cert: &str, issuer: &str| {
        let c = pem_der(cert);
        let i = pem_der(issuer);
        tresor_pki::x509::signed_by(&c, &i)
    };
    for (path, body) in [
        (
            "issue/r",
            json!({"common_name": "leaf.example.com", "issuer_ref": other_id}),
        ),
        (
            "issue/r",
            json!({"common_name": "leaf.example.com", "issuer_ref": "other"}),
        ),
        (
            "sign/r",
            json!({"csr": csr_pem, "common_name": "leaf.example.com", "issuer_ref": other_id}),
        ),
        (
            "sign-verbatim/r",
            json!({"csr": csr_pem, "issuer_ref": other_id}),
        ),
        (
            "sign-verbatim",
            json!({"csr": csr_pem, "issuer_ref": other_id}),
        ),
    ] {
        let resp = h.resp(Operation::Update, path, body).await;
        let data = resp.data.unwrap();
        let cert = data["certificate"].as_str().unwrap();
        assert!(
            signed_by(cert, &default_pem),
            "{path}: not signed by the default"
        );
        assert!(
            !signed_by(cert, &other_pem),
            "{path}: signed by the body's issuer"
        );
        assert_eq!(data["issuing_ca"].as_str().unwrap(), default_pem, "{path}");
        // As Vault: the parameter is not part of the endpoint, and the caller is told.
        assert!(
            resp.warnings
                .iter()
                .any(|w| w.contains("ignored") && w.contains("issuer_ref")),
            "{path}: {:?}",
            resp.warnings
        );
    }
    // The role's issuer_ref is what chooses, on the role paths...
    role(&h, "pinned", json!({"issuer_ref": "other"})).await;
    let pinned = h
        .write(
            "issue/pinned",
            json!({"common_name": "leaf.example.com", "issuer_ref": "default"}),
        )
        .await;
    assert!(signed_by(
        pinned["certificate"].as_str().unwrap(),
        &other_pem
    ));
    // ...and the URL on the issuer/:ref paths (which ACLs can name).
    for path in [
        format!("issuer/{other_id}/issue/r"),
        "issuer/other/issue/r".to_owned(),
    ] {
        let c = h
            .write(
                &path,
                json!({"common_name": "leaf.example.com", "issuer_ref": "default"}),
            )
            .await;
        assert!(
            signed_by(c["certificate"].as_str().unwrap(), &other_pem),
            "{path}"
        );
    }
    let c = h
        .write(
            &format!("issuer/{other_id}/sign/r"),
            json!({"csr": csr_pem, "common_name": "leaf.example.com"}),
        )
        .await;
    assert!(signed_by(c["certificate"].as_str().unwrap(), &other_pem));
    let c = h
        .write(
            &format!("issuer/{other_id}/sign-verbatim"),
            json!({"csr": csr_pem}),
        )
        .await;
    assert!(signed_by(c["certificate"].as_str().unwrap(), &other_pem));
}
