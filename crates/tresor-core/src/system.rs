//! The system backend mounted at `sys/`: mounts, auth methods, policies, capabilities, key
//! rotation, and the internal endpoints the CLI uses. The seal-lifecycle endpoints that answer
//! bare JSON (`sys/init`, `sys/unseal`, ...) are served by the HTTP crate directly on the core.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path, Table, TableBackend};
use tresor_sdk::{
    LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
};

use crate::control::SysHandles;
use crate::error::CoreError;
use crate::mounts::{MountEntry, Table as MountTable, sanitize_path};

/// The `sys/` backend: built from the subsystems of its unseal and the core's [`Control`]
/// operations, never from the core itself.
///
/// [`Control`]: crate::control::Control
pub(crate) struct Sys {
    handles: SysHandles,
}

pub(crate) fn backend(handles: SysHandles) -> Arc<dyn LogicalBackend> {
    TableBackend::new(Sys { handles }, table())
}

/// The handles a `sys/` handler works with.
pub(crate) fn handles(s: &Sys) -> &SysHandles {
    &s.handles
}

pub(crate) fn le(e: CoreError) -> LogicalError {
    match e {
        CoreError::InvalidRequest(m) => LogicalError::InvalidRequest(m),
        CoreError::PermissionDenied => LogicalError::PermissionDenied,
        CoreError::Forbidden(m) => LogicalError::Forbidden(m),
        CoreError::NotFound(m) => LogicalError::NotFound(m),
        other => LogicalError::Internal(other.to_string()),
    }
}

fn obj(v: Value) -> Response {
    Response::json(v)
}

fn ttl_field(v: Option<&Value>, name: &str) -> Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) if s == "system" => Ok(Some(0)),
        Some(v) => tresor_sdk::duration::from_json(v)
            .map(|d| Some(d.as_secs()))
            .map_err(|e| LogicalError::invalid(format!("unable to parse {name}: {e}"))),
    }
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        _ => Vec::new(),
    }
}

fn apply_config(entry: &mut MountEntry, config: &Map<String, Value>) -> Result<()> {
    if let Some(t) = ttl_field(config.get("default_lease_ttl"), "default_lease_ttl")? {
        entry.config.default_lease_ttl = t;
    }
    if let Some(t) = ttl_field(config.get("max_lease_ttl"), "max_lease_ttl")? {
        entry.config.max_lease_ttl = t;
    }
    if entry.config.max_lease_ttl != 0
        && entry.config.default_lease_ttl > entry.config.max_lease_ttl
    {
        return Err(LogicalError::invalid(
            "given default lease TTL greater than given max lease TTL",
        ));
    }
    if let Some(Value::Bool(b)) = config.get("force_no_cache") {
        entry.config.force_no_cache = *b;
    }
    if let Some(v) = config.get("listing_visibility").and_then(Value::as_str) {
        if !matches!(v, "" | "unauth" | "hidden") {
            return Err(LogicalError::invalid(format!(
                "invalid listing_visibility {v:?}"
            )));
        }
        entry.config.listing_visibility = v.to_owned();
    }
    for (k, slot) in [
        (
            "audit_non_hmac_request_keys",
            &mut entry.config.audit_non_hmac_request_keys,
        ),
        (
            "audit_non_hmac_response_keys",
            &mut entry.config.audit_non_hmac_response_keys,
        ),
        (
            "passthrough_request_headers",
            &mut entry.config.passthrough_request_headers,
        ),
        (
            "allowed_response_headers",
            &mut entry.config.allowed_response_headers,
        ),
    ] {
        if config.contains_key(k) {
            *slot = str_list(config.get(k));
        }
    }
    if let Some(v) = config.get("token_type").and_then(Value::as_str)
        && !v.is_empty()
    {
        if entry.table != MountTable::Auth {
            return Err(LogicalError::invalid(
                "'token_type' can only be modified on auth mounts",
            ));
        }
        if !matches!(v, "default-service" | "default-batch" | "service" | "batch") {
            return Err(LogicalError::invalid(format!(
                "invalid value for 'token_type': {v:?}"
            )));
        }
        entry.config.token_type = v.to_owned();
    }
    Ok(())
}

fn apply_options(entry: &mut MountEntry, options: &Map<String, Value>) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for (k, v) in options {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(LogicalError::invalid(format!(
                    "option {k:?} must be a string"
                )));
            }
        };
        if k == "version" {
            if entry.kind != "kv" {
                return Err(LogicalError::invalid(format!(
                    "secrets engine {:?} does not allow setting a version",
                    entry.kind
                )));
            }
            if !matches!(v.as_str(), "1" | "2" | "") {
                return Err(LogicalError::invalid(format!(
                    "invalid kv version {v:?}: must be 1 or 2"
                )));
            }
            let old = entry.options.get("version").cloned().unwrap_or_default();
            if old == "2" && v != "2" {
                return Err(LogicalError::invalid(
                    "cannot downgrade mount from versioned to non-versioned",
                ));
            }
            if old != "2" && v == "2" && !entry.uuid.is_empty() {
                warnings.push("Upgrading from non-versioned to versioned data. This backend will be unavailable for a brief period and will resume service shortly.".to_owned());
            }
        }
        entry.options.insert(k.clone(), v);
    }
    Ok(warnings)
}

/// Splits `mounts/<path>/tune` from `mounts/<path>`.
fn split_tune(path: &str) -> (String, bool) {
    match path.trim_end_matches('/').strip_suffix("/tune") {
        Some(p) => (sanitize_path(p), true),
        None => (sanitize_path(path), false),
    }
}

async fn mounts_list(s: Arc<Sys>, table: MountTable) -> Result<Option<Response>> {
    let c = handles(&s);
    let mut m = Map::new();
    for e in c.mount_entries(table).map_err(le)? {
        m.insert(e.path.clone(), e.info());
    }
    Ok(Some(Response::data(m)))
}

async fn mount_path(
    s: Arc<Sys>,
    req: Request,
    f: Fields,
    table: MountTable,
) -> Result<Option<Response>> {
    let c = handles(&s);
    let input: MountInput = f.input();
    let (path, tune) = split_tune(&input.path);
    let find = || -> Result<Arc<MountEntry>> {
        c.mount_entries(table)
            .map_err(le)?
            .into_iter()
            .find(|e| e.path == path)
            .ok_or_else(|| {
                LogicalError::invalid(match table {
                    MountTable::Mounts => format!("No secret engine mount at {path}"),
                    MountTable::Auth => format!("No auth engine at {path}"),
                })
            })
    };
    match (req.operation, tune) {
        (Operation::Read, false) => Ok(Some(obj(find()?.info()))),
        (Operation::Read, true) => {
            let e = find()?;
            let (default_ttl, max_ttl) = c.lease_ttls().map_err(le)?;
            let mv = e.mount_view(default_ttl, max_ttl, None);
            let mut d = json!({
                "description": e.description,
                "default_lease_ttl": mv.default_lease_ttl.as_secs(),
                "max_lease_ttl": mv.max_lease_ttl.as_secs(),
                "force_no_cache": e.config.force_no_cache,
            });
            if !e.config.listing_visibility.is_empty() {
                d["listing_visibility"] = json!(e.config.listing_visibility);
            }
            if !e.options.is_empty() {
                d["options"] = json!(e.options);
            }
            if table == MountTable::Auth {
                d["token_type"] = json!(if e.config.token_type.is_empty() {
                    "default-service"
                } else {
                    &e.config.token_type
                });
            }
            for (k, v) in [
                (
                    "audit_non_hmac_request_keys",
                    &e.config.audit_non_hmac_request_keys,
                ),
                (
                    "audit_non_hmac_response_keys",
                    &e.config.audit_non_hmac_response_keys,
                ),
                (
                    "passthrough_request_headers",
                    &e.config.passthrough_request_headers,
                ),
                (
                    "allowed_response_headers",
                    &e.config.allowed_response_headers,
                ),
            ] {
                if !v.is_empty() {
                    d[k] = json!(v);
                }
            }
            Ok(Some(obj(d)))
        }
        (Operation::Update | Operation::Create, true) => {
            let data = req.data;
            let (description, options) = (input.description, input.options);
            let mut warnings = Vec::new();
            c.update_mount(table, &path, |e| {
                if matches!(e.kind.as_str(), "cubbyhole") {
                    return Err(CoreError::InvalidRequest(format!(
                        "cannot tune {:?}",
                        e.path
                    )));
                }
                if let Some(d) = description {
                    e.description = d;
                }
                apply_config(e, &data).map_err(|x| CoreError::InvalidRequest(x.to_string()))?;
                warnings = apply_options(e, &options)
                    .map_err(|x| CoreError::InvalidRequest(x.to_string()))?;
                Ok(())
            })
            .await
            .map_err(le)?;
            if warnings.is_empty() {
                return Ok(None);
            }
            let mut r = Response::default();
            r.warnings = warnings;
            Ok(Some(r))
        }
        (Operation::Update | Operation::Create, false) => {
            let mut kind = input.kind;
            if kind.is_empty() {
                return Err(LogicalError::invalid(match table {
                    MountTable::Mounts => "backend type must be specified as a string",
                    MountTable::Auth => "backend type must be specified as a string",
                }));
            }
            let mut forced_version = None;
            if kind == "kv-v1" || kind == "kv-v2" {
                forced_version = Some(if kind == "kv-v2" { "2" } else { "1" });
                kind = "kv".into();
            }
            let description = input.description.unwrap_or_default();
            let mut entry = MountEntry::new(table, &path, &kind, &description);
            let uuid = std::mem::take(&mut entry.uuid);
            apply_config(&mut entry, &input.config)?;
            apply_options(&mut entry, &input.options)?;
            if let Some(v) = forced_version {
                entry.options.insert("version".into(), v.into());
            }
            if entry.kind == "kv" && !entry.options.contains_key("version") {
                entry.options.insert("version".into(), "1".into());
            }
            entry.uuid = uuid;
            entry.local = input.local;
            entry.seal_wrap = input.seal_wrap;
            entry.external_entropy_access = input.external_entropy_access;
            c.mount(entry).await.map_err(le)?;
            Ok(None)
        }
        (Operation::Delete, false) => {
            c.unmount(table, &path).await.map_err(le)?;
            Ok(None)
        }
        _ => Err(LogicalError::UnsupportedOperation),
    }
}

/// `sys/mfa/validate`: the held login gets its token once its passcodes validate.
async fn mfa_validate(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let MfaValidateInput {
        mfa_request_id: id,
        mfa_payload,
    } = f.input();
    let pending = u
        .identity
        .mfa
        .take(&id)
        .ok_or_else(|| LogicalError::invalid("invalid request ID"))?;
    let mut payload = std::collections::BTreeMap::new();
    for (k, v) in mfa_payload {
        let codes: Vec<String> = match v {
            Value::String(s) => vec![s],
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            other => vec![other.to_string()],
        };
        payload.insert(k, codes);
    }
    u.identity
        .mfa
        .validate(&pending.auth.entity_id, &pending.constraints, &payload)
        .await
        .map_err(le)?;
    let router = u.router();
    let route = router.exact(&pending.mount_path).ok_or_else(|| {
        LogicalError::invalid("the auth method of this login is no longer mounted")
    })?;
    let auth = c
        .materialize_auth(
            &u,
            route,
            pending.auth,
            &pending.login_path,
            crate::tokens::now(),
        )
        .await
        .map_err(le)?;
    Ok(Some(Response {
        auth: Some(auth),
        ..Default::default()
    }))
}

async fn caller_acl(c: &SysHandles, req: &Request) -> Result<Arc<tresor_policy::Acl>> {
    let u = c.unsealed().map_err(le)?;
    u.acl_for(&req.caller.policies, &req.caller.entity_id)
        .map_err(le)
}

/// A caller's policy names with its entity's identity policies.
fn all_policy_names(
    u: &crate::core::Unsealed,
    policies: &[String],
    entity_id: &str,
) -> Vec<String> {
    let mut names = policies.to_vec();
    if let Some(r) = u.entity(entity_id) {
        for p in &r.policies {
            if !names.contains(p) {
                names.push(p.clone());
            }
        }
    }
    names
}

async fn capabilities(
    s: Arc<Sys>,
    policies: Vec<String>,
    entity_id: String,
    paths: Vec<String>,
) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let acl = match u.acl_for(&policies, &entity_id) {
        Ok(acl) => acl,
        // A disabled entity's tokens can do nothing.
        Err(_) => Arc::new(tresor_policy::Acl::new(&[])),
    };
    let mut m = Map::new();
    for p in &paths {
        let p = p.trim_start_matches('/');
        let mut caps: Vec<&str> = acl.capabilities(p);
        caps.sort_unstable();
        m.insert(p.to_owned(), json!(caps));
    }
    if paths.len() == 1
        && let Some(v) = m.values().next().cloned()
    {
        m.insert("capabilities".into(), v);
    }
    Ok(Some(Response::data(m)))
}

tresor_sdk::input! {
    /// `sys/mounts/:path[/tune]` and `sys/auth/:path[/tune]`. The mount settings arrive nested
    /// in `config` when mounting and at the top level when tuning; `apply_config` reads them
    /// from either map.
    struct MountInput {
        path: Str, "The path to mount to (or `<path>/tune`).";
        kind("type"): Str, "The type of the backend, such as `kv` or `pki`.";
        description: OptStr, "User-friendly description for this mount.";
        config: Map, "Configuration for this mount, such as default_lease_ttl and max_lease_ttl.";
        options: Map, "Mount-type specific options (for kv: version).";
        local: Bool, "Mark the mount as local (not replicated).";
        seal_wrap: Bool, "Whether to turn on seal wrapping for the mount.";
        external_entropy_access: Bool, "Whether to give the mount access to external entropy.";
        default_lease_ttl: Raw, "The default lease TTL for this mount (tune).";
        max_lease_ttl: Raw, "The max lease TTL for this mount (tune).";
        listing_visibility: Str, "Whether to show this mount in the UI-specific listing endpoint (tune).";
        force_no_cache: Bool, "Whether to disable caching (tune).";
        audit_non_hmac_request_keys: List, "Request keys not to HMAC in audit logs (tune).";
        audit_non_hmac_response_keys: List, "Response keys not to HMAC in audit logs (tune).";
        passthrough_request_headers: List, "Request headers passed to the backend (tune).";
        allowed_response_headers: List, "Response headers the backend may set (tune).";
        token_type: Str, "The type of tokens issued by an auth mount (tune).";
        plugin_name: Str, "Deprecated: the plugin name.";
        plugin_version: Str, "The plugin version (built-in engines only).";
    }
}

tresor_sdk::input! {
    /// `sys/remount`.
    struct RemountInput {
        from: Str, "The current path of the mount.";
        to: Str, "The new path of the mount.";
    }
}

tresor_sdk::input! {
    /// `sys/remount/status/:id`.
    struct RemountStatusInput {
        id: Str, "The migration ID the remount answered with.";
    }
}

tresor_sdk::input! {
    /// `sys/policy/:name` and `sys/policies/acl/:name`.
    struct PolicyInput {
        name: Str, "The name of the policy.";
        policy: Str, "The rules of the policy, in HCL or JSON (optionally base64-encoded).";
        rules: OptStr, "Deprecated: use `policy`.";
    }
}

tresor_sdk::input! {
    /// `sys/capabilities`.
    struct CapabilitiesInput {
        token: Str, "The token whose capabilities to check.";
        paths: List, "The paths to check.";
        path: List, "Deprecated: use `paths`.";
    }
}

tresor_sdk::input! {
    /// `sys/capabilities-self`.
    struct CapabilitiesSelfInput {
        token: Str, "Ignored: the calling token is used.";
        paths: List, "The paths to check.";
        path: List, "Deprecated: use `paths`.";
    }
}

tresor_sdk::input! {
    /// `sys/capabilities-accessor`.
    struct CapabilitiesAccessorInput {
        accessor: Str, "The accessor of the token to check.";
        paths: List, "The paths to check.";
        path: List, "Deprecated: use `paths`.";
    }
}

tresor_sdk::input! {
    /// `sys/mfa/validate`.
    struct MfaValidateInput {
        mfa_request_id: Str, "The mfa_request_id of the login's answer.", required;
        mfa_payload: Map, "Per MFA method ID (or name), a list holding the passcode.", required;
    }
}

tresor_sdk::input! {
    /// `sys/rotate/config` and `sys/rotate/keyring/config`: each setting changes only when sent.
    struct RotateConfigInput {
        max_operations: OptInt, "The number of encryption operations after which the key is rotated automatically.";
        interval: OptDuration, "How often to rotate automatically (0 disables; at least 24h).";
        enabled: OptBool, "Whether automatic rotation is enabled.", default = true;
    }
}

tresor_sdk::input! {
    /// `sys/internal/ui/mounts/:path`.
    struct UiMountInput {
        path: Str, "The path of the mount.";
    }
}

/// The paths of a capabilities request: `paths`, then the deprecated `path`.
fn paths_of(mut paths: Vec<String>, path: Vec<String>) -> Vec<String> {
    paths.extend(path);
    paths
}

fn table() -> Table<Sys> {
    let tune_fields = |p: Path<Sys>| p.input::<MountInput>();
    let mut table = Table {
        help: "The system backend is built in to Tresor and cannot be remounted or unmounted. It contains the paths that configure Tresor itself.",
        special: SpecialPaths {
            unauthenticated: vec!["wrapping/lookup".into(), "mfa/validate".into(), "internal/ui/mounts".into(), "internal/ui/mounts/*".into(), "internal/specs/openapi".into()],
            root: vec!["audit".into(), "audit/*".into(), "leases/lookup/*".into(), "plugins/catalog/*".into(), "leases/revoke-prefix/*".into(), "leases/revoke-force/*".into(), "revoke-prefix/*".into(), "revoke-force/*".into(), "auth/*".into(), "remount".into(), "rotate".into(), "rotate/config".into(), "rotate/keyring".into(), "rotate/keyring/config".into(), "rotate/root/backup".into(), "seal".into(), "step-down".into(), "rekey/backup".into(), "config/*".into(), "raw".into(), "raw/*".into(), "storage/raft/snapshot".into(), "storage/raft/snapshot-force".into(), "storage/raft/snapshot-auto/*".into(), "storage/snapshot-auto/*".into(), "host-info".into(), "in-flight-req".into(), "loggers".into(), "loggers/*".into(), "monitor".into()],
        },
        paths: vec![
            Path::new("mounts")
                .op(Operation::Read, |s, _, _| Box::pin(mounts_list(s, MountTable::Mounts)))
                .help("List the currently mounted secrets engines.", "Returns every secrets engine mount with its type, description, accessor, options and configuration."),
            tune_fields(Path::new("mounts/{path:+}"))
                .op(Operation::Read, |s, r, f| Box::pin(mount_path(s, r, f, MountTable::Mounts)))
                .op(Operation::Update, |s, r, f| Box::pin(mount_path(s, r, f, MountTable::Mounts)))
                .op(Operation::Delete, |s, r, f| Box::pin(mount_path(s, r, f, MountTable::Mounts)))
                .help("Mount a new secrets engine, read or tune its configuration, or unmount it.", "POST to mounts/<path> enables an engine; DELETE disables it and removes all of its data; mounts/<path>/tune reads or changes its TTLs, description and options."),
            Path::new("auth")
                .op(Operation::Read, |s, _, _| Box::pin(mounts_list(s, MountTable::Auth)))
                .help("List the currently enabled auth methods.", "Returns every auth method with its type, description, accessor and configuration."),
            tune_fields(Path::new("auth/{path:+}"))
                .op(Operation::Read, |s, r, f| Box::pin(mount_path(s, r, f, MountTable::Auth)))
                .op(Operation::Update, |s, r, f| Box::pin(mount_path(s, r, f, MountTable::Auth)))
                .op(Operation::Delete, |s, r, f| Box::pin(mount_path(s, r, f, MountTable::Auth)))
                .help("Enable, read, tune or disable an auth method.", "POST to auth/<path> enables a method; DELETE disables it; auth/<path>/tune reads or changes its configuration."),
            Path::new("remount")
                .input::<RemountInput>()
                .op(Operation::Update, |s, _, f| {
                    Box::pin(async move {
                        let RemountInput { from, to } = f.input();
                        if from.is_empty() || to.is_empty() {
                            return Err(LogicalError::invalid("both 'from' and 'to' path must be specified as a string"));
                        }
                        let c = handles(&s);
                        let (from, to) = (sanitize_path(&from), sanitize_path(&to));
                        c.remount(&from, &to).await.map_err(le)?;
                        let id = uuid::Uuid::new_v4().to_string();
                        let u = c.unsealed().map_err(le)?;
                        let info = json!({"source_mount": from, "target_mount": to, "status": "success"});
                        u.barrier.put(&format!("core/remount/{id}"), &serde_json::to_vec(&info).map_err(LogicalError::internal)?).await.map_err(le)?;
                        Ok(Some(obj(json!({"migration_id": id})).with_warning("Mount move has been queued. Progress will be reported in Tresor's server log, tagged with the returned migration_id")))
                    })
                })
                .help("Move the mount point of an already-mounted backend.", "Moves a secrets engine or auth method to a new path, keeping its data."),
            Path::new("remount/status/{id}")
                .input::<RemountStatusInput>()
                .op(Operation::Read, |s, _, f| {
                    Box::pin(async move {
                        let c = handles(&s);
                        let u = c.unsealed().map_err(le)?;
                        let id = f.input::<RemountStatusInput>().id;
                        match u.barrier.get(&format!("core/remount/{id}")).await.map_err(le)? {
                            None => Ok(None),
                            Some(b) => {
                                let info: Value = serde_json::from_slice(&b).map_err(LogicalError::internal)?;
                                Ok(Some(obj(json!({"migration_id": id, "migration_info": info}))))
                            }
                        }
                    })
                })
                .help("Check the status of a mount move.", "Returns the migration's source, target and status."),
            Path::new("policy")
                .op(Operation::Read, |s, _, _| {
                    Box::pin(async move {
                        let c = handles(&s);
                        let mut names = c.unsealed().map_err(le)?.policies.list();
                        names.push("root".into());
                        Ok(Some(obj(json!({"keys": names, "policies": names}))))
                    })
                })
                .help("List the configured access control policies.", "Returns the names of all ACL policies, including the built-in `default` and `root`."),
            Path::new("policy/{name}")
                .case_insensitive("name")
                .input::<PolicyInput>()
                .op(Operation::Read, |s, _, f| Box::pin(policy_read(s, f, "rules")))
                .op(Operation::Update, |s, _, f| Box::pin(policy_write(s, f)))
                .op(Operation::Delete, |s, _, f| Box::pin(policy_delete(s, f)))
                .help("Read, write or delete an ACL policy.", "Policies are written in HCL or JSON and govern which paths a token may use and how."),
            Path::new("policies/acl/")
                .op(Operation::List, |s, _, _| Box::pin(policy_list(s)))
                .op(Operation::Read, |s, _, _| Box::pin(policy_list(s)))
                .help("List the ACL policies.", "Returns the names of all ACL policies."),
            Path::new("policies/acl/{name}")
                .case_insensitive("name")
                .input::<PolicyInput>()
                .op(Operation::Read, |s, _, f| Box::pin(policy_read(s, f, "policy")))
                .op(Operation::Update, |s, _, f| Box::pin(policy_write(s, f)))
                .op(Operation::Delete, |s, _, f| Box::pin(policy_delete(s, f)))
                .help("Read, write or delete an ACL policy.", "Policies are written in HCL or JSON and govern which paths a token may use and how."),
            Path::new("capabilities")
                .input::<CapabilitiesInput>()
                .op(Operation::Update, |s, _, f| {
                    Box::pin(async move {
                        let CapabilitiesInput { token, paths, path } = f.input();
                        let c = handles(&s);
                        let u = c.unsealed().map_err(le)?;
                        let t = u.tokens.lookup(&token).await.map_err(le)?;
                        let t = t.ok_or_else(|| LogicalError::invalid("invalid token"))?;
                        capabilities(s, t.policies.clone(), t.entity_id.clone(), paths_of(paths, path)).await
                    })
                })
                .help("Fetch the capabilities of a token on the given paths.", "Returns, for each path, the list of capabilities the token has there."),
            Path::new("mfa/validate")
                .input::<MfaValidateInput>()
                .op(Operation::Update, |s, _, f| Box::pin(mfa_validate(s, f)))
                .help("Finish a login that needs MFA.", "Checks a passcode per login enforcement against the entity's enrolled TOTP secret and, if every enforcement is satisfied, issues the login's token. A passcode validates once."),
            Path::new("capabilities-self")
                .input::<CapabilitiesSelfInput>()
                .op(Operation::Update, |s, r, f| {
                    Box::pin(async move {
                        let CapabilitiesSelfInput { paths, path, .. } = f.input();
                        let policies = r.caller.policies.clone();
                        capabilities(s, policies, r.caller.entity_id.clone(), paths_of(paths, path)).await
                    })
                })
                .help("Fetch the capabilities of the calling token on the given paths.", "Returns, for each path, the list of capabilities the calling token has there."),
            Path::new("capabilities-accessor")
                .input::<CapabilitiesAccessorInput>()
                .op(Operation::Update, |s, _, f| {
                    Box::pin(async move {
                        let CapabilitiesAccessorInput { accessor, paths, path } = f.input();
                        let c = handles(&s);
                        let u = c.unsealed().map_err(le)?;
                        let t = u.tokens.by_accessor(&accessor).await.map_err(le)?;
                        let t = t.ok_or_else(|| LogicalError::invalid("invalid accessor"))?;
                        capabilities(s, t.policies.clone(), t.entity_id.clone(), paths_of(paths, path)).await
                    })
                })
                .help("Fetch the capabilities of the token with the given accessor.", "Returns, for each path, the list of capabilities that token has there."),
            Path::new("key-status")
                .op(Operation::Read, |s, _, _| {
                    Box::pin(async move {
                        let c = handles(&s);
                        let k = c.unsealed().map_err(le)?.barrier.key_status();
                        let install = time::OffsetDateTime::from_unix_timestamp(k.install_time)
                            .ok()
                            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                            .unwrap_or_default();
                        Ok(Some(obj(json!({"term": k.term, "install_time": install, "encryptions": k.encryptions}))))
                    })
                })
                .help("Provides information about the backend encryption key.", "Returns the active key term, its install time and how many encryptions it has done."),
            rotate_path("rotate"),
            rotate_path("rotate/keyring"),
            rotate_config_path("rotate/config"),
            rotate_config_path("rotate/keyring/config"),
            Path::new("seal")
                .op(Operation::Update, |s, _, _| {
                    Box::pin(async move {
                        handles(&s).seal().await.map_err(le)?;
                        Ok(None)
                    })
                })
                .help("Seal the server.", "Drops the keys from memory; an unseal is needed to serve again."),
            Path::new("step-down")
                .op(Operation::Update, |s, _, _| {
                    Box::pin(async move {
                        handles(&s).step_down().map_err(le)?;
                        Ok(None)
                    })
                })
                .help("Cause the node to give up active status.", "With HA, the active node releases the leader lock and becomes a standby; another node takes over. A single node without HA has nothing to step down to: this succeeds and does nothing."),
            Path::new("ha-status")
                .op(Operation::Read, |s, _, _| {
                    Box::pin(async move {
                        let st = handles(&s).ha_status().map_err(le)?;
                        Ok(Some(obj(st)))
                    })
                })
                .help("Check the HA status of the cluster.", "Lists the active node and the standbys it heard from in the last 30 seconds."),
            rekey_backup_path("rekey/backup"),
            rekey_backup_path("rotate/root/backup"),
            Path::new("internal/ui/mounts")
                .op(Operation::Read, |s, r, _| Box::pin(ui_mounts(s, r)))
                .help("Lists the mounts visible to the caller, for UIs and the CLI.", "Without a token, only mounts tuned with listing_visibility=unauth are shown."),
            Path::new("internal/ui/mounts/{path:+}")
                .input::<UiMountInput>()
                .op(Operation::Read, |s, r, f| Box::pin(ui_mount(s, r, f)))
                .help("Returns the mount serving a path, if the caller may use it.", "The CLI's kv commands use this to find a mount's path and KV version."),
            Path::new("internal/specs/openapi")
                .op(Operation::Read, |s, r, _| Box::pin(openapi(s, r)))
                .help("Generate an OpenAPI 3 document of the mounted paths the caller may use.", "Built from every mounted engine's path table; as in Vault, the set of included paths depends on the request token: a mount's paths are listed only to a token whose policies grant something inside it (all of them to a root token), and a request without a token sees only the unauthenticated paths."),
        ],
    };
    table.paths.extend(crate::system_leases::paths());
    table.paths.extend(crate::system_tools::paths());
    table.paths.extend(crate::system_counters::paths());
    table.paths.extend(crate::system_password::paths());
    table.paths.extend(crate::system_catalog::paths());
    table.paths.extend(crate::system_audit::paths());
    table.paths.extend(crate::snapshot::paths());
    table.paths.extend(crate::snapshot_auto::paths());
    table.paths.extend(crate::system_governing::paths());
    table.paths.extend(crate::system_ops::paths());
    table
}

fn rotate_path(pattern: &'static str) -> Path<Sys> {
    Path::new(pattern)
        .op(Operation::Update, |s, _, _| {
            Box::pin(async move {
                let c = handles(&s);
                let term = c
                    .unsealed()
                    .map_err(le)?
                    .barrier
                    .rotate()
                    .await
                    .map_err(le)?;
                tracing::info!(term, "barrier key rotated");
                Ok(None)
            })
        })
        .help(
            "Rotates the backend encryption key used to persist data.",
            "Adds a new key term to the keyring; new writes use it, old values stay readable.",
        )
}

fn rotate_config_path(pattern: &'static str) -> Path<Sys> {
    Path::new(pattern)
        .input::<RotateConfigInput>()
        .op(Operation::Read, |s, _, _| {
            Box::pin(async move {
                let c = handles(&s);
                let r = c.unsealed().map_err(le)?.barrier.rotation_config();
                // `interval` is a Go duration when set and the number 0 when not, as Vault answers.
                let interval = if r.interval_secs == 0 {
                    json!(0)
                } else {
                    json!(tresor_sdk::duration::format_go(Duration::from_secs(r.interval_secs)))
                };
                Ok(Some(obj(json!({"max_operations": r.max_operations, "interval": interval, "enabled": r.enabled}))))
            })
        })
        .op(Operation::Update, |s, _, f| {
            Box::pin(async move {
                let c = handles(&s);
                let u = c.unsealed().map_err(le)?;
                let mut r = u.barrier.rotation_config();
                let input: RotateConfigInput = f.input();
                if let Some(n) = input.max_operations {
                    if !(1_000_000..=3_865_470_566).contains(&n) {
                        return Err(LogicalError::invalid("max_operations must be between 1000000 and 3865470566"));
                    }
                    r.max_operations = n as u64;
                }
                if let Some(i) = input.interval {
                    if !i.is_zero() && i < Duration::from_secs(24 * 3600) {
                        return Err(LogicalError::invalid("interval must be 0 or at least 24h"));
                    }
                    r.interval_secs = i.as_secs();
                }
                if let Some(enabled) = input.enabled {
                    r.enabled = enabled;
                }
                u.barrier.set_rotation_config(r).await.map_err(le)?;
                Ok(None)
            })
        })
        .help("Configures automatic rotation of the backend encryption key.", "Sets the operation count and interval after which the barrier key rotates by itself.")
}

fn rekey_backup_path(pattern: &'static str) -> Path<Sys> {
    Path::new(pattern)
        .op(Operation::Read, |s, _, _| {
            Box::pin(async move {
                match handles(&s).rekey_backup().await.map_err(le)? {
                    None => Err(LogicalError::invalid("no backed-up keys found")),
                    Some(v) => Ok(Some(obj(v))),
                }
            })
        })
        .op(Operation::Delete, |s, _, _| {
            Box::pin(async move {
                handles(&s).rekey_backup_delete().await.map_err(le)?;
                Ok(None)
            })
        })
        .help(
            "Read or delete the PGP-encrypted backup of unseal keys from the last rekey.",
            "Written when a rekey was started with backup=true.",
        )
}

async fn policy_list(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
    let mut names = c.unsealed().map_err(le)?.policies.list();
    names.push("root".into());
    Ok(Some(Response::list(names)))
}

async fn policy_read(s: Arc<Sys>, f: Fields, key: &'static str) -> Result<Option<Response>> {
    let c = handles(&s);
    let name = crate::policies::normalize(&f.input::<PolicyInput>().name);
    if name == "root" {
        return Ok(Some(obj(json!({"name": "root", key: ""}))));
    }
    match c.unsealed().map_err(le)?.policies.get(&name) {
        None => Ok(None),
        Some(p) => Ok(Some(obj(json!({"name": name, key: p.raw})))),
    }
}

async fn policy_write(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let mut warnings = Vec::new();
    let PolicyInput {
        name,
        policy: mut text,
        rules,
    } = f.input();
    if let Some(rules) = rules.filter(|_| text.is_empty()) {
        text = rules;
        warnings.push("'rules' is deprecated, please use 'policy' instead".to_owned());
    }
    // Vault accepts base64-encoded policy text.
    {
        use base64::Engine as _;
        if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(text.trim())
            && let Ok(s) = String::from_utf8(b)
        {
            text = s;
        }
    }
    c.unsealed()
        .map_err(le)?
        .policies
        .set(&name, &text)
        .await
        .map_err(le)?;
    if warnings.is_empty() {
        return Ok(None);
    }
    let mut r = Response::default();
    r.warnings = warnings;
    Ok(Some(r))
}

async fn policy_delete(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    c.unsealed()
        .map_err(le)?
        .policies
        .delete(&f.input::<PolicyInput>().name)
        .await
        .map_err(le)?;
    Ok(None)
}

async fn ui_mounts(s: Arc<Sys>, req: Request) -> Result<Option<Response>> {
    let c = handles(&s);
    let authed = req.caller.token_id.is_some();
    let acl = caller_acl(&c, &req).await?;
    let mut secret = Map::new();
    let mut auth = Map::new();
    for (table, out) in [
        (MountTable::Mounts, &mut secret),
        (MountTable::Auth, &mut auth),
    ] {
        for e in c.mount_entries(table).map_err(le)? {
            if e.config.listing_visibility == "unauth" && !authed {
                out.insert(
                    e.path.clone(),
                    json!({"type": e.kind, "description": e.description, "options": e.options}),
                );
            } else if authed
                && (acl.is_root() || {
                    let u = c.unsealed().map_err(le)?;
                    let names = all_policy_names(&u, &req.caller.policies, &req.caller.entity_id);
                    has_mount_access(&u.policies, &names, &e.route_path())
                })
            {
                out.insert(e.path.clone(), e.info());
            }
        }
    }
    Ok(Some(obj(json!({"secret": secret, "auth": auth}))))
}

/// Whether a token's policies grant anything at or below a mount (Vault's "has mount
/// access"): some non-deny rule whose pattern can match a path inside the mount.
fn has_mount_access(
    policies: &crate::policies::PolicyStore,
    names: &[String],
    mount: &str,
) -> bool {
    names.iter().filter_map(|n| policies.get(n)).any(|p| {
        p.paths.iter().any(|rule| {
            if rule.capabilities.contains(tresor_policy::Capability::Deny)
                || rule.capabilities.is_empty()
            {
                return false;
            }
            let pat = rule.path.as_str();
            // Compare up to the first wildcard: a rule inside the mount, or a glob covering it.
            let lit_end = pat.find(['*', '+']).unwrap_or(pat.len());
            let lit = &pat[..lit_end];
            lit.starts_with(mount)
                || (lit_end < pat.len() && mount.starts_with(lit))
                || (lit.len() < mount.len()
                    && pat[lit_end..].starts_with('+')
                    && mount.starts_with(lit))
        })
    })
}

async fn ui_mount(s: Arc<Sys>, req: Request, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let path = f.input::<UiMountInput>().path;
    if req.caller.token_id.is_none() {
        return Err(LogicalError::PermissionDenied);
    }
    let u = c.unsealed().map_err(le)?;
    let router = u.router();
    let Some((route, _)) = router.route(&path) else {
        return Err(LogicalError::PermissionDenied);
    };
    let acl = u
        .acl_for(&req.caller.policies, &req.caller.entity_id)
        .map_err(le)?;
    let names = all_policy_names(&u, &req.caller.policies, &req.caller.entity_id);
    if !acl.is_root() && !has_mount_access(&u.policies, &names, &route.path) {
        return Err(LogicalError::PermissionDenied);
    }
    let mut info = route.entry.info();
    info["path"] = json!(route.entry.path);
    Ok(Some(obj(info)))
}

/// A path pattern with each `{capture}` replaced by a plain name, to ask the ACL about it.
fn sample_path(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|seg| if seg.starts_with('{') { "x" } else { seg })
        .collect::<Vec<_>>()
        .join("/")
}

async fn openapi(s: Arc<Sys>, req: Request) -> Result<Option<Response>> {
    let c = handles(&s);
    let u = c.unsealed().map_err(le)?;
    let acl = req
        .caller
        .token_id
        .is_some()
        .then(|| u.acl_for(&req.caller.policies, &req.caller.entity_id).ok())
        .flatten();
    let mut paths = Map::new();
    for r in u.router().routes() {
        for (p, item) in r.backend.openapi_paths() {
            let rel = p.trim_start_matches('/');
            let full = format!("{}{rel}", r.path);
            // A path is listed when the caller's policies grant something on it (captures
            // stand for any one name), or when it needs no token at all.
            let visible = tresor_sdk::path_matches_special(&r.special.unauthenticated, rel)
                || acl.as_ref().is_some_and(|acl| {
                    acl.is_root()
                        || acl
                            .capabilities(&sample_path(&full))
                            .iter()
                            .any(|c| *c != "deny")
                });
            if visible {
                paths.insert(format!("/{full}"), item);
            }
        }
    }
    Ok(Some(obj(
        json!({"openapi": "3.0.2", "info": {"title": "Tresor API", "description": "HTTP API that gives you full access to Tresor. All API routes are prefixed with `/v1/`.", "version": crate::VERSION, "license": {"name": "Mozilla Public License 2.0"}}, "paths": paths}),
    )))
}
