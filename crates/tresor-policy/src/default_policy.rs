//! The built-in `default` policy: what every non-root token gets unless created without it —
//! enough for a token to inspect, renew and revoke itself, use its cubbyhole, and use response
//! wrapping and the hashing tool. Written for Tresor from Vault's documented list of grants.

/// The text of the built-in `default` policy (HCL).
pub const DEFAULT_POLICY: &str = r#"# Tresor's built-in default policy. It can be edited but not deleted.

# A token may look itself up, renew itself and revoke itself.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# A token may ask what it can do on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# The web UI reads the token's combined ACL.
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# Leases handed to this token can be renewed and looked up.
path "sys/renew" {
  capabilities = ["update"]
}

path "sys/leases/renew" {
  capabilities = ["update"]
}

path "sys/leases/lookup" {
  capabilities = ["update"]
}

# Each token owns a private cubbyhole.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response wrapping: wrap data, inspect and open wrapping tokens.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}

path "sys/wrapping/lookup" {
  capabilities = ["update"]
}

path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# Hashing helper.
path "sys/tools/hash" {
  capabilities = ["update"]
}

path "sys/tools/hash/*" {
  capabilities = ["update"]
}

# The OIDC provider's authorization endpoint: an application logs the token's entity in.
path "identity/oidc/provider/+/authorize" {
  capabilities = ["read", "update"]
}

# Control-group requests (an enterprise feature; harmless when absent).
path "sys/control-group/request" {
  capabilities = ["update"]
}
"#;
