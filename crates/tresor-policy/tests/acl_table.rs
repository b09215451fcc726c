//! Table-driven ACL tests: policy set × operation × path × parameters → decision.
//!
//! Each line of `CASES` is one case:
//! `policies | operation | path | params | expectation`
//! * policies: names from `policy_text` joined by `+`; `root` is the root ACL, `none` is an
//!   empty policy list;
//! * params: a JSON object, or `-` for none;
//! * expectation: `allow` or `deny`, then optional words: `sudo` (root_privs must be true;
//!   without it, it must be false), and for denials the reason: `nomatch`, `explicit`,
//!   `missing:<capability>`, `required:<name>`, `denied:<name>`, `notallowed`,
//!   `notallowed:<name>`, `ttl`.

use std::sync::Arc;

use tresor_policy::{
    Acl, Capability, DEFAULT_POLICY, DeniedReason, Operation, Policy, parse_policy,
};

fn policy_text(name: &str) -> &'static str {
    match name {
        "exact" => {
            r#"
path "secret/foo" {
  capabilities = ["read"]
}
"#
        }
        "glob" => {
            r#"
path "secret/*" {
  capabilities = ["read", "list"]
}
path "secret/team/*" {
  capabilities = ["create", "update"]
}
path "secret/zip-*" {
  capabilities = ["delete"]
}
"#
        }
        "deny" => {
            r#"
path "vault/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "vault/super-secret" {
  capabilities = ["deny"]
}
path "vault/locked/*" {
  capabilities = ["deny"]
}
path "vault/locked/open" {
  capabilities = ["read"]
}
"#
        }
        "grant_shared" => {
            r#"
path "shared/x" {
  capabilities = ["read", "update", "sudo"]
}
"#
        }
        "deny_shared" => {
            r#"
path "shared/x" {
  capabilities = ["deny"]
}
"#
        }
        "union_r" => {
            r#"
path "shared/data" {
  capabilities = ["read"]
}
path "shared/glob/*" {
  capabilities = ["list"]
}
"#
        }
        "union_w" => {
            r#"
path "shared/data" {
  capabilities = ["update"]
}
path "shared/glob/*" {
  capabilities = ["delete"]
}
"#
        }
        "plus" => {
            r#"
path "secret/+/teamb" {
  capabilities = ["read"]
}
path "secret/+/+/teamb" {
  capabilities = ["update"]
}
"#
        }
        "kv" => {
            r#"
path "kv/*" {
  capabilities = ["list"]
}
path "kv/+/config" {
  capabilities = ["read"]
}
path "kv/+/+/*" {
  capabilities = ["delete"]
}
path "kv/app/*" {
  capabilities = ["create"]
}
"#
        }
        "wprio" => {
            r#"
path "app/+/cfg" {
  capabilities = ["read"]
}
path "app/+/cfg*" {
  capabilities = ["update"]
}
path "app/+/cfg-prod*" {
  capabilities = ["delete"]
}
"#
        }
        "legacy" => {
            r#"
path "old/*" {
  policy = "write"
}
path "old/ro" {
  policy = "read"
}
path "old/admin" {
  policy = "sudo"
}
path "old/gone" {
  policy = "deny"
}
"#
        }
        "params" => {
            r#"
path "params/restricted" {
  capabilities = ["create", "update"]
  allowed_parameters = {
    "foo" = []
    "bar" = ["zip", "zap"]
  }
}
path "params/anyother" {
  capabilities = ["create"]
  allowed_parameters = {
    "bar" = ["zip"]
    "*"   = []
  }
}
path "params/denied" {
  capabilities = ["create"]
  denied_parameters = {
    "bar" = []
  }
}
path "params/denied-values" {
  capabilities = ["create"]
  denied_parameters = {
    "bar" = ["zip", "zap"]
  }
}
path "params/deny-all" {
  capabilities = ["create"]
  denied_parameters = {
    "*" = []
  }
}
path "params/required" {
  capabilities = ["create", "delete"]
  required_parameters = ["bar", "baz"]
}
path "params/glob" {
  capabilities = ["update"]
  allowed_parameters = {
    "bar" = ["foo-*", "*-suffix", "*mid*"]
  }
}
path "params/mixed" {
  capabilities = ["update"]
  allowed_parameters = {
    "bar" = []
  }
  denied_parameters = {
    "bar" = ["evil"]
  }
}
path "params/typed" {
  capabilities = ["update"]
  allowed_parameters = {
    "ttl"  = [60, 120]
    "flag" = [true]
    "policies" = ["dev-*"]
  }
}
path "params/star-literal" {
  capabilities = ["update"]
  allowed_parameters = {
    "bar" = ["*"]
  }
}
"#
        }
        "listing" => {
            r#"
path "listing/exact" {
  capabilities = ["list"]
}
path "listing/dir/" {
  capabilities = ["list"]
}
path "listing/glob/*" {
  capabilities = ["list"]
}
path "listing/+/items" {
  capabilities = ["list"]
}
"#
        }
        "sudo" => {
            r#"
path "sys/audit/*" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}
path "sys/mounts" {
  capabilities = ["read"]
}
"#
        }
        "nothing" => {
            r#"
# A policy that names a path but grants nothing on it.
path "empty/path" {
  capabilities = []
}
"#
        }
        "ttl_a" => {
            r#"
path "wrap/me" {
  capabilities = ["update"]
  min_wrapping_ttl = "10s"
  max_wrapping_ttl = "1h"
}
"#
        }
        "ttl_b" => {
            r#"
path "wrap/me" {
  capabilities = ["read"]
  min_wrapping_ttl = 5
  max_wrapping_ttl = "30m"
}
path "wrap/conflict" {
  capabilities = ["read"]
  min_wrapping_ttl = "2h"
}
"#
        }
        "ttl_c" => {
            r#"
path "wrap/conflict" {
  capabilities = ["read"]
  max_wrapping_ttl = "1h"
}
"#
        }
        "default" => DEFAULT_POLICY,
        "json" => {
            r#"{
  "path": {
    "json/*": { "capabilities": ["read"] },
    "json/secret": { "policy": "deny" }
  }
}"#
        }
        other => panic!("unknown policy {other:?} in the table"),
    }
}

const CASES: &str = r#"
# policies          | op       | path                      | params                          | expect
# --- exact vs glob
exact               | read     | secret/foo                | -                               | allow
exact               | read     | secret/food               | -                               | deny nomatch
exact               | read     | secret/foo/bar            | -                               | deny nomatch
exact               | update   | secret/foo                | -                               | deny missing:update
glob                | read     | secret/anything           | -                               | allow
glob                | read     | secret/a/b/c              | -                               | allow
glob                | read     | secrets/a                 | -                               | deny nomatch
glob                | list     | secret/                   | -                               | allow
exact+glob          | update   | secret/foo                | -                               | deny missing:update
exact+glob          | read     | secret/foo                | -                               | allow
# --- glob priority: the longest prefix decides alone
glob                | read     | secret/team/x             | -                               | deny missing:read
glob                | create   | secret/team/x             | -                               | allow
glob                | delete   | secret/zip-zap            | -                               | allow
glob                | read     | secret/zip-zap            | -                               | deny missing:read
glob                | delete   | secret/zip/zap            | -                               | deny missing:delete
# --- deny
deny                | read     | vault/ok                  | -                               | allow
deny                | read     | vault/super-secret        | -                               | deny explicit
deny                | delete   | vault/locked/a            | -                               | deny explicit
deny                | read     | vault/locked/open         | -                               | allow
deny                | update   | vault/locked/open         | -                               | deny missing:update
grant_shared+deny_shared | read | shared/x                 | -                               | deny explicit
deny_shared+grant_shared | update | shared/x               | -                               | deny explicit
grant_shared        | read     | shared/x                  | -                               | allow sudo
# --- capabilities union for the same pattern across policies
union_r             | update   | shared/data               | -                               | deny missing:update
union_w             | read     | shared/data               | -                               | deny missing:read
union_r+union_w     | read     | shared/data               | -                               | allow
union_r+union_w     | update   | shared/data               | -                               | allow
union_r+union_w     | delete   | shared/data               | -                               | deny missing:delete
union_r+union_w     | list     | shared/glob/               | -                              | allow
union_r+union_w     | delete   | shared/glob/k             | -                               | allow
# --- + segment wildcards
plus                | read     | secret/foo/teamb          | -                               | allow
plus                | read     | secret/foo/teamc          | -                               | deny nomatch
plus                | read     | secret/teamb              | -                               | deny nomatch
plus                | update   | secret/foo/bar/teamb      | -                               | allow
plus                | read     | secret/foo/bar/teamb      | -                               | deny missing:read
plus                | read     | secret/foo/bar/baz/teamb  | -                               | deny nomatch
# --- priority rules between globs and + paths
kv                  | create   | kv/app/config             | -                               | allow
kv                  | read     | kv/app/config             | -                               | deny missing:read
kv                  | read     | kv/web/config             | -                               | allow
kv                  | list     | kv/web/other              | -                               | allow
kv                  | list     | kv/a/b/c                  | -                               | allow
kv                  | delete   | kv/a/b/c                  | -                               | deny missing:delete
wprio               | read     | app/x/cfg                 | -                               | allow
wprio               | update   | app/x/cfg                 | -                               | deny missing:update
wprio               | update   | app/x/cfg2                | -                               | allow
wprio               | delete   | app/x/cfg-prod-1          | -                               | allow
wprio               | update   | app/x/cfg-prod-1          | -                               | deny missing:update
# --- legacy policy = "..."
legacy              | create   | old/a                     | -                               | allow
legacy              | update   | old/a                     | -                               | allow
legacy              | delete   | old/a                     | -                               | allow
legacy              | list     | old/                      | -                               | allow
legacy              | patch    | old/a                     | -                               | deny missing:patch
legacy              | read     | old/ro                    | -                               | allow
legacy              | update   | old/ro                    | -                               | deny missing:update
legacy              | update   | old/admin                 | -                               | allow sudo
legacy              | read     | old/gone                  | -                               | deny explicit
# --- allowed parameters
params              | create   | params/restricted         | {"foo": "anything"}             | allow
params              | create   | params/restricted         | {"bar": "zip"}                  | allow
params              | create   | params/restricted         | {"bar": "zap", "foo": 1}        | allow
params              | create   | params/restricted         | {"bar": "zop"}                  | deny notallowed:bar
params              | create   | params/restricted         | {"baz": "x"}                    | deny notallowed
params              | create   | params/restricted         | {"BAR": "zip"}                  | allow
params              | create   | params/restricted         | -                               | allow
params              | create   | params/anyother           | {"other": "x", "bar": "zip"}    | allow
params              | create   | params/anyother           | {"bar": "zap"}                  | deny notallowed:bar
params              | update   | params/glob               | {"bar": "foo-1"}                | allow
params              | update   | params/glob               | {"bar": "x-suffix"}             | allow
params              | update   | params/glob               | {"bar": "amidb"}                | allow
params              | update   | params/glob               | {"bar": "bar-foo"}              | deny notallowed:bar
params              | update   | params/typed              | {"ttl": 60, "flag": true}       | allow
params              | update   | params/typed              | {"ttl": 61}                     | deny notallowed:ttl
params              | update   | params/typed              | {"ttl": "60"}                   | deny notallowed:ttl
params              | update   | params/typed              | {"policies": ["dev-a", "dev-b"]} | allow
params              | update   | params/typed              | {"policies": ["dev-a", "root"]} | deny notallowed:policies
params              | update   | params/star-literal       | {"bar": "*"}                    | allow
params              | update   | params/star-literal       | {"bar": "x"}                    | deny notallowed:bar
# --- denied parameters (checked before allowed)
params              | create   | params/denied             | {"bar": "x"}                    | deny denied:bar
params              | create   | params/denied             | {"foo": "x"}                    | allow
params              | create   | params/denied-values      | {"bar": "zip"}                  | deny denied:bar
params              | create   | params/denied-values      | {"bar": "zoo"}                  | allow
params              | create   | params/denied-values      | {"bar": ["ok", "zap"]}          | deny denied:bar
params              | create   | params/deny-all           | {"x": 1}                        | deny denied:*
params              | create   | params/deny-all           | {}                              | allow
params              | update   | params/mixed              | {"bar": "good"}                 | allow
params              | update   | params/mixed              | {"bar": "evil"}                 | deny denied:bar
# --- required parameters (only for create/read/update/patch)
params              | create   | params/required           | {"bar": 1, "baz": 2}            | allow
params              | create   | params/required           | {"bar": 1}                      | deny required:baz
params              | create   | params/required           | -                               | deny required:bar
params              | delete   | params/required           | -                               | allow
# --- list on foo/ vs foo
listing             | list     | listing/exact/            | -                               | allow
listing             | list     | listing/exact             | -                               | allow
listing             | list     | listing/dir               | -                               | allow
listing             | list     | listing/dir/              | -                               | allow
listing             | read     | listing/dir               | -                               | deny nomatch
listing             | list     | listing/glob              | -                               | allow
listing             | read     | listing/glob              | -                               | deny nomatch
listing             | list     | listing/any/items/        | -                               | allow
listing             | list     | listing/any/items         | -                               | allow
# --- sudo
sudo                | read     | sys/audit/file            | -                               | allow sudo
sudo                | delete   | sys/audit/file            | -                               | allow sudo
sudo                | read     | sys/mounts                | -                               | allow
sudo                | update   | sys/mounts                | -                               | deny missing:update
# --- root
root                | read     | anything/at/all           | -                               | allow sudo
root                | delete   | sys/audit/file            | {"x": 1}                        | allow sudo
# --- deny by default and operations without capabilities
none                | read     | secret/foo                | -                               | deny nomatch
none                | list     | /                         | -                               | deny nomatch
nothing             | read     | empty/path                | -                               | deny missing:read
nothing             | help     | empty/path                | -                               | allow
none                | help     | sys/mounts                | -                               | allow
# --- wrapping TTLs
ttl_a+ttl_b         | read     | wrap/me                   | -                               | allow
ttl_b+ttl_c         | read     | wrap/conflict             | -                               | deny ttl
ttl_c               | read     | wrap/conflict             | -                               | allow
# --- JSON policy and the built-in default policy
json                | read     | json/anything             | -                               | allow
json                | read     | json/secret               | -                               | deny explicit
default             | read     | auth/token/lookup-self    | -                               | allow
default             | update   | auth/token/renew-self     | -                               | allow
default             | update   | auth/token/revoke-self    | -                               | allow
default             | update   | sys/capabilities-self     | -                               | allow
default             | create   | cubbyhole/mine            | {"k": "v"}                      | allow
default             | list     | cubbyhole/                | -                               | allow
default             | update   | sys/wrapping/unwrap       | -                               | allow
default             | update   | sys/tools/hash/sha2-256   | -                               | allow
default             | update   | sys/leases/renew          | -                               | allow
default             | read     | secret/foo                | -                               | deny nomatch
default             | update   | auth/token/create         | -                               | deny nomatch
default             | read     | sys/wrapping/unwrap       | -                               | deny missing:read
"#;

fn parse_op(s: &str) -> Operation {
    match s {
        "create" => Operation::Create,
        "read" => Operation::Read,
        "update" => Operation::Update,
        "patch" => Operation::Patch,
        "delete" => Operation::Delete,
        "list" => Operation::List,
        "help" => Operation::Help,
        other => panic!("unknown operation {other:?} in the table"),
    }
}

fn build_acl(set: &str) -> Acl {
    match set {
        "root" => Acl::root(),
        "none" => Acl::new(&[]),
        names => {
            let policies: Vec<Arc<Policy>> = names
                .split('+')
                .map(|name| {
                    Arc::new(
                        parse_policy(name, policy_text(name))
                            .unwrap_or_else(|e| panic!("policy {name}: {e}")),
                    )
                })
                .collect();
            Acl::new(&policies)
        }
    }
}

fn reason_word(reason: &DeniedReason) -> String {
    match reason {
        DeniedReason::NoMatchingRule => "nomatch".into(),
        DeniedReason::ExplicitDeny => "explicit".into(),
        DeniedReason::MissingCapability(cap) => format!("missing:{}", cap.as_str()),
        DeniedReason::WrappingTtlConflict => "ttl".into(),
        DeniedReason::RequiredParameterMissing(p) => format!("required:{p}"),
        DeniedReason::ParameterDenied(p) => format!("denied:{p}"),
        DeniedReason::ParameterNotAllowed(Some(p)) => format!("notallowed:{p}"),
        DeniedReason::ParameterNotAllowed(None) => "notallowed".into(),
    }
}

#[test]
fn acl_decision_table() {
    let mut count = 0;
    let mut failures = Vec::new();
    for (lineno, line) in CASES.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(
            cols.len(),
            5,
            "line {}: expected 5 columns: {line}",
            lineno + 1
        );
        let (set, op, path, params, expect) = (cols[0], cols[1], cols[2], cols[3], cols[4]);
        let acl = build_acl(set);
        let op = parse_op(op);
        let params: Option<serde_json::Map<String, serde_json::Value>> = match params {
            "-" => None,
            json => Some(
                serde_json::from_str(json)
                    .unwrap_or_else(|e| panic!("line {}: bad params {json}: {e}", lineno + 1)),
            ),
        };
        let result = acl.allow_operation(op, path, params.as_ref());

        let mut words = expect.split_whitespace();
        let want_allowed = match words.next() {
            Some("allow") => true,
            Some("deny") => false,
            other => panic!("line {}: bad expectation {other:?}", lineno + 1),
        };
        let mut want_sudo = false;
        let mut want_reason = None;
        for word in words {
            if word == "sudo" {
                want_sudo = true;
            } else {
                want_reason = Some(word.to_owned());
            }
        }

        let got_reason = result.denied_reason.as_ref().map(reason_word);
        let ok = result.allowed == want_allowed
            && result.root_privs == want_sudo
            && (result.allowed == result.denied_reason.is_none())
            && (want_reason.is_none() || got_reason == want_reason);
        if !ok {
            failures.push(format!(
                "line {}: {line}\n    got allowed={} sudo={} reason={:?} matched={:?}",
                lineno + 1,
                result.allowed,
                result.root_privs,
                got_reason,
                acl.matched_pattern(op, path),
            ));
        }
        count += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        count >= 60,
        "the table must keep at least 60 cases, has {count}"
    );
}

#[test]
fn wrapping_ttls_merge_to_the_lowest() {
    let acl = build_acl("ttl_a+ttl_b");
    let result = acl.allow_operation(Operation::Update, "wrap/me", None);
    assert!(result.allowed);
    assert_eq!(
        result.min_wrapping_ttl,
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(
        result.max_wrapping_ttl,
        Some(std::time::Duration::from_secs(1800))
    );
    assert!(result.capabilities.contains(Capability::Read));
    assert!(result.capabilities.contains(Capability::Update));
}

#[test]
fn root_acl_reports_root() {
    let acl = Acl::root();
    let result = acl.allow_operation(Operation::Delete, "sys/seal", None);
    assert!(result.allowed && result.is_root && result.root_privs);
    assert!(result.capabilities.contains(Capability::Root));
    assert_eq!(acl.capabilities("any/path"), vec!["root"]);
}

#[test]
fn capabilities_endpoint_view() {
    let acl = build_acl("glob+deny+listing+sudo");
    assert_eq!(acl.capabilities("secret/x"), vec!["list", "read"]);
    assert_eq!(acl.capabilities("secret/team/x"), vec!["create", "update"]);
    assert_eq!(acl.capabilities("vault/super-secret"), vec!["deny"]);
    assert_eq!(acl.capabilities("nowhere"), vec!["deny"]);
    assert_eq!(
        acl.capabilities("sys/audit/file"),
        vec!["create", "delete", "read", "sudo", "update"]
    );
    // Vault's LIST fallback applies here: "listing/exact/" also sees the exact "listing/exact".
    assert_eq!(acl.capabilities("listing/exact/"), vec!["list"]);
    assert_eq!(Acl::new(&[]).capabilities("secret/x"), vec!["deny"]);
}

#[test]
fn empty_acls_deny_every_operation() {
    let nothing = build_acl("nothing");
    let empty = Acl::new(&[]);
    let paths = [
        "",
        "/",
        "secret/foo",
        "empty/path",
        "sys/audit/x",
        "cubbyhole/x",
    ];
    let ops = [
        Operation::Create,
        Operation::Read,
        Operation::Update,
        Operation::Patch,
        Operation::Delete,
        Operation::List,
    ];
    for acl in [&nothing, &empty] {
        for path in paths {
            for op in ops {
                let r = acl.allow_operation(op, path, None);
                assert!(!r.allowed, "{op} {path:?} must be denied");
                assert!(!r.root_privs && !r.is_root);
            }
        }
    }
}

#[test]
fn matched_pattern_names_the_deciding_rule() {
    let acl = build_acl("kv");
    assert_eq!(
        acl.matched_pattern(Operation::Read, "kv/app/config"),
        Some("kv/app/*")
    );
    assert_eq!(
        acl.matched_pattern(Operation::Read, "kv/web/config"),
        Some("kv/+/config")
    );
    assert_eq!(
        acl.matched_pattern(Operation::Read, "kv/a/b/c"),
        Some("kv/*")
    );
    assert_eq!(acl.matched_pattern(Operation::Read, "other"), None);
}
