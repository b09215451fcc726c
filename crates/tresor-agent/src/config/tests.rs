//! The configuration reader: Vault Agent files read as written, and every mistake named by
//! block and field.

use super::*;

fn ok(text: &str) -> Config {
    parse(text, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn bad(text: &str) -> String {
    match parse(text, Path::new("/")) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const APPROLE: &str = r#"
auto_auth {
  method "approle" {
    mount_path = "auth/approle"
    config = {
      role_id_file_path = "/tmp/role"
      secret_id_file_path = "/tmp/secret"
      secret_id_response_wrapping_path = "auth/approle/role/web/secret-id"
    }
  }
  sink "file" {
    config = { path = "/tmp/token" }
  }
}
"#;

#[test]
fn a_vault_agent_file_reads_as_written() {
    let c = ok(&format!(
        r#"
pid_file = "/tmp/agent.pid"
vault {{
  address = "http://127.0.0.1:8200"
  retry {{ num_retries = 5 }}
}}
{APPROLE}
listener "tcp" {{
  address = "127.0.0.1:8100"
  tls_disable = true
}}
api_proxy {{ use_auto_auth_token = "force" }}
cache {{}}
template_config {{
  static_secret_render_interval = "10s"
  exit_on_retry_failure = true
}}
template {{
  contents = "{{{{ with secret \"secret/data/app\" }}}}{{{{ .Data.data.pw }}}}{{{{ end }}}}"
  destination = "/tmp/out"
  perms = "0640"
  command = "echo hi"
}}
"#
    ));
    assert_eq!(c.vault.address.as_deref(), Some("http://127.0.0.1:8200"));
    assert_eq!(c.vault.num_retries, 5);
    let a = c.auto_auth.unwrap();
    assert_eq!(a.method.mount_path, "auth/approle");
    match a.method.kind {
        MethodKind::AppRole {
            remove_secret_id_file_after_reading,
            secret_id_response_wrapping_path,
            ..
        } => {
            assert!(remove_secret_id_file_after_reading);
            assert_eq!(
                secret_id_response_wrapping_path.as_deref(),
                Some("auth/approle/role/web/secret-id")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(a.sinks[0].mode, 0o600);
    assert_eq!(c.listeners, vec![Listener::Tcp("127.0.0.1:8100".into())]);
    assert_eq!(c.api_proxy.use_auto_auth_token, UseAutoAuthToken::Force);
    assert!(c.cache);
    assert_eq!(
        c.template_config.static_secret_render_interval,
        Duration::from_secs(10)
    );
    let t = &c.templates[0];
    assert_eq!(t.perms, 0o640);
    assert_eq!(t.command, vec!["/bin/sh", "-c", "echo hi"]);
    assert_eq!(c.pid_file, Some(PathBuf::from("/tmp/agent.pid")));
}

#[test]
fn the_type_attribute_spelling_works_too() {
    let c = ok(r#"
auto_auth {
  method {
    type = "token_file"
    config { token_file_path = "/tmp/t" }
  }
  sink { type = "file" config { path = "/tmp/s" mode = 0640 } }
}
"#);
    let a = c.auto_auth.unwrap();
    assert_eq!(a.method.mount_path, "auth/token_file");
    assert_eq!(a.sinks[0].mode, 0o640);
}

#[test]
fn the_certificate_block() {
    let c = ok(&format!(
        r#"{APPROLE}
certificate "etcd-server" {{
  mount = "etcd/c1/pki"
  role = "member"
  common_name = "etcd-3.internal"
  ip_sans = ["10.0.4.17"]
  renew_before = "1h"
  key_file {{ path = "/tmp/k" owner = "root" group = "root" mode = "0600" }}
  cert_file {{ path = "/tmp/c" mode = "0644" }}
  ca_file {{ path = "/tmp/ca" }}
  chain_file {{ path = "/tmp/chain" }}
  reload {{ command = ["systemctl", "reload", "etcd"] timeout = "30s" }}
}}
certificate "csr" {{
  mount = "pki"
  role = "r"
  common_name = "x"
  csr = true
  key_type = "rsa"
  key_bits = 3072
  renew_before = "25%"
  key_file {{ path = "/tmp/k2" }}
  cert_file {{ path = "/tmp/c2" }}
}}
"#
    ));
    let e = &c.certificates[0];
    assert_eq!(e.mount, "etcd/c1/pki");
    assert_eq!(e.key_file.owner, Some(0));
    assert_eq!(e.key_file.group, Some(0));
    assert_eq!(e.key_file.mode, 0o600);
    assert_eq!(
        e.renew_before,
        RenewBefore::Duration(Duration::from_secs(3600))
    );
    assert_eq!(
        e.reload.as_ref().unwrap().command,
        vec!["systemctl", "reload", "etcd"]
    );
    let s = &c.certificates[1];
    assert_eq!(s.csr, Some(KeyType::Rsa(3072)));
    assert_eq!(s.renew_before, RenewBefore::Fraction(0.25));
    assert_eq!(s.key_file.mode, 0o600);
    assert_eq!(s.cert_file.mode, 0o644);
}

#[test]
fn mistakes_name_the_block_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "vault { adress = \"x\" }",
            "vault.adress: unknown or unsupported field",
        ),
        (
            "auto_auth { method \"approle\" { config { secret_id_file_path = \"/x\" } } }",
            "auto_auth.method \"approle\".config.role_id_file_path: is required",
        ),
        (
            "auto_auth { method \"ldap\" { config {} } }",
            "auto_auth.method: type \"ldap\" is not supported",
        ),
        (
            "auto_auth { method \"token_file\" { config { token_file_path = \"/t\" } } sink \"file\" { config { path = \"/s\" mode = \"rw\" } } }",
            "auto_auth.sink \"file\".config.mode: expected an octal mode",
        ),
        (
            "auto_auth { method \"token_file\" { config { token_file_path = \"/t\" } } sink \"file\" { config { path = \"/s\" } dh_type = \"curve25519\" } }",
            "auto_auth.sink \"file\".dh_type: unknown or unsupported field",
        ),
        (
            "listener \"tcp\" { address = \"127.0.0.1:1\" }",
            "listener \"tcp\".tls_disable: TLS listeners are not supported",
        ),
        (
            "template { destination = \"/x\" }",
            "template[0].contents: exactly one of source and contents is required",
        ),
        (
            "template { contents = \"x\" destination = \"/x\" }",
            "auto_auth: is required",
        ),
        (
            "template_config { static_secret_render_interval = \"soon\" }",
            "template_config.static_secret_render_interval: time: invalid duration",
        ),
        ("", "nothing to do"),
        ("vault {", "invalid HCL"),
        (
            "exec { command = [\"env\"] restart_on_secret_changes = \"sometimes\" }",
            "exec.restart_on_secret_changes: expected \"always\" or \"never\"",
        ),
        (
            "api_proxy { use_auto_auth_token = \"maybe\" }",
            "api_proxy.use_auto_auth_token: expected true, false or \"force\"",
        ),
        (
            "cache {}\nauto_auth { method \"token_file\" { config { token_file_path = \"/t\" } } }",
            "cache: needs a listener",
        ),
    ];
    for (text, want) in cases {
        let got = bad(text);
        assert!(got.contains(want), "{text}\n  got:  {got}\n  want: {want}");
    }
}

#[test]
fn certificate_mistakes() {
    let cert = |body: &str| format!("{APPROLE}\ncertificate \"c\" {{\n{body}\n}}\n");
    let base =
        "mount = \"pki\"\nrole = \"r\"\ncommon_name = \"x\"\ncert_file { path = \"/tmp/c\" }\n";
    let cases: &[(String, &str)] = &[
        (
            cert(
                "mount = \"pki\"\nrole = \"r\"\ncommon_name = \"x\"\nkey_file { path = \"/tmp/k\" }",
            ),
            "certificate \"c\".cert_file: is required",
        ),
        (
            cert(&format!(
                "{base}key_file {{ path = \"/tmp/k\" mode = \"0644\" }}"
            )),
            "certificate \"c\".key_file.mode: 0644 lets others read the private key",
        ),
        (
            cert(&format!(
                "{base}key_file {{ path = \"/tmp/k\" owner = \"no-such-user-xyz\" }}"
            )),
            "certificate \"c\".key_file.owner: no such user",
        ),
        (
            cert(&format!("{base}key_file {{ path = \"/tmp/c\" }}")),
            "is used for two parts",
        ),
        (
            cert(&format!(
                "{base}key_file {{ path = \"/tmp/k\" }}\nrenew_before = \"soon\""
            )),
            "certificate \"c\".renew_before: time: invalid duration",
        ),
        (
            cert(&format!(
                "{base}key_file {{ path = \"/tmp/k\" }}\ncsr = true\nkey_type = \"ec\"\nkey_bits = 1024"
            )),
            "certificate \"c\".key_bits: unsupported key",
        ),
        (
            cert(&format!(
                "{base}key_file {{ path = \"/tmp/k\" }}\nreload {{ timeout = \"1s\" }}"
            )),
            "certificate \"c\".reload.command: is required",
        ),
    ];
    for (text, want) in cases {
        let got = bad(text);
        assert!(got.contains(want), "{text}\n  got:  {got}\n  want: {want}");
    }
    // 0640 is fine when a group is named.
    ok(&cert(&format!(
        "{base}key_file {{ path = \"/tmp/k\" group = \"root\" mode = \"0640\" }}"
    )));
}

#[test]
fn a_password_never_reaches_debug_output() {
    let c = ok(
        r#"auto_auth { method "userpass" { config { username = "u" password = "hunter2-secret" } } }"#,
    );
    assert!(!format!("{c:?}").contains("hunter2-secret"));
}
