//! hvac's federated-login auth methods against `tresor server -dev`: `client.auth.ldap`,
//! `client.auth.jwt` / `client.auth.oidc` and `client.auth.kubernetes`, every method of each,
//! called as hvac's docs and tests call them. The script (`auth_hvac.py`, next to this file)
//! checks each answer against Vault's documented behaviour (envelopes, field names and types,
//! defaults on read, 404s and 400s).
//!
//! Everything runs on 127.0.0.1 and is started here: a real OpenLDAP slapd
//! (`common::ldap`) for the LDAP logins; JWTs signed by PyJWT with keys the script makes
//! (`jwt_validation_pubkeys`) and Tresor's own identity OIDC issuer for JWT/OIDC; and for
//! Kubernetes a TokenReview endpoint the script serves over HTTPS with a CA it makes, as
//! `jwt_auth.rs` does: no real Kubernetes API server is exercised.

mod common;

use std::time::Duration;

use common::ldap::{BASE, start_slapd};
use common::{Server, client_script, free_port};

/// Runs the script's `family` against `s` and checks it printed every step.
fn run_family(s: &Server, family: &str, env: &[(&str, String)], steps: &[&str]) {
    let mut all = vec![
        ("VAULT_TOKEN", "root"),
        ("FAMILY", family),
        ("PYTHONWARNINGS", "ignore::DeprecationWarning"),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, v.as_str())));
    client_script(
        s,
        include_str!("auth_hvac.py"),
        &s.home,
        &all,
        Duration::from_secs(120),
        steps,
    );
}

#[test]
fn hvac_ldap_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let slapd = start_slapd(&dir.path().join("ldap"));
    let s = Server::start_dev(dir.path(), free_port());
    run_family(
        &s,
        "ldap",
        &[
            ("LDAP_PORT", slapd.port.to_string()),
            (
                "LDAP_CA",
                dir.path().join("ldap/ca.pem").display().to_string(),
            ),
            ("LDAP_BASE", BASE.to_owned()),
        ],
        &[
            "read_configuration shows the defaults",
            "configure with every argument/read_configuration",
            "configure updates only what it sends",
            "configure refuses bad values",
            "configure with non-defaults",
            "create_or_update_group/read_group/list_groups/delete_group",
            "create_or_update_user/read_user/list_users/delete_user",
            "login",
            "mount_point",
        ],
    );
}

#[test]
fn hvac_jwt_and_oidc_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    run_family(
        &s,
        "jwt",
        &[],
        &[
            "jwt configure/read_config",
            "jwt create_role/read_role/list_roles",
            "jwt jwt_login with a locally signed JWT",
            "jwt delete_role",
            "oidc configure/read_config",
            "oidc create_role/read_role/list_roles",
            "oidc_authorization_url_request",
            "oidc jwt_login with an identity token",
            "oidc delete_role",
            "jwt jwt_login with jwks_url",
        ],
    );
}

/// No real Kubernetes API server is exercised: the script serves the TokenReview API itself
/// on 127.0.0.1 (HTTPS, a CA it makes) and verifies service-account JWTs it signed.
#[test]
fn hvac_kubernetes_calls_work_against_tresor() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_dev(dir.path(), free_port());
    run_family(
        &s,
        "kubernetes",
        &[],
        &[
            "configure/read_config",
            "configure refuses Vault's placeholder certificate",
            "create_role/read_role/list_roles",
            "login reviewed by a local TokenReview endpoint",
            "delete_role",
        ],
    );
}
