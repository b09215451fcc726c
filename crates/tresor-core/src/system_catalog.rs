//! `sys/plugins/catalog` and `sys/internal/ui/resultant-acl` of the system backend.
//!
//! Tresor runs no external plugins: its catalog is what is compiled in, in Vault's answer
//! shape — the built-in `system` and `cubbyhole` backends and the `token` method, plus every
//! engine and auth method the binary registered. Registering or removing plugins is refused.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path};
use tresor_sdk::{LogicalError, Operation, Request, Response, Result};

use crate::control::SysHandles;
use crate::mounts::Table;
use crate::system::{Sys, handles, le};

/// Vault's plugin types, in the order its catalog lists them.
const TYPES: [&str; 3] = ["auth", "database", "secret"];

/// The `plugin_name` values the `database` engine serves, listed under `database`.
const DATABASE_PLUGINS: [&str; 5] = [
    "mysql-aurora-database-plugin",
    "mysql-database-plugin",
    "mysql-legacy-database-plugin",
    "mysql-rds-database-plugin",
    "postgresql-database-plugin",
];

/// The version every built-in reports (as `sys/mounts` reports `running_plugin_version`).
fn builtin_version() -> String {
    format!("v{}+builtin.tresor", crate::VERSION)
}

/// The names in the catalog under one plugin type, sorted.
fn names(c: &SysHandles, plugin_type: &str) -> Vec<String> {
    let mut v = match plugin_type {
        "secret" => {
            let mut v = c.registered_types(Table::Mounts);
            v.extend(["cubbyhole".to_owned(), "system".to_owned()]);
            v
        }
        "auth" => {
            let mut v = c.registered_types(Table::Auth);
            v.push("token".to_owned());
            v
        }
        // The database engine's plugins (its `plugin_name` values), when the binary has it.
        _ if c
            .registered_types(Table::Mounts)
            .iter()
            .any(|t| t == "database") =>
        {
            DATABASE_PLUGINS.iter().map(|p| (*p).to_owned()).collect()
        }
        _ => Vec::new(),
    };
    v.sort();
    v.dedup();
    v
}

tresor_sdk::input! {
    /// `LIST sys/plugins/catalog/:type`.
    struct TypeInput {
        kind("type"): Str, "The plugin type: auth, database or secret.";
    }
}

tresor_sdk::input! {
    /// `sys/plugins/catalog/:type/:name`; the registration fields are declared so that the
    /// refusal, not an unknown-field warning, answers them.
    struct PluginInput {
        kind("type"): Str, "The plugin type: auth, database or secret.";
        name: Str, "The name of the plugin.";
        sha256: Str, "Not supported: plugins cannot be registered.";
        command: Str, "Not supported: plugins cannot be registered.";
        args: List, "Not supported: plugins cannot be registered.";
        env: List, "Not supported: plugins cannot be registered.";
        version: Str, "Not supported: plugins cannot be registered.";
    }
}

fn plugin_type(t: String) -> Result<String> {
    if TYPES.contains(&t.as_str()) {
        return Ok(t);
    }
    Err(LogicalError::invalid(format!(
        "unknown plugin type {t:?}: expected auth, database or secret"
    )))
}

/// `GET sys/plugins/catalog`: the names by type and the `detailed` list.
async fn catalog(s: Arc<Sys>) -> Result<Option<Response>> {
    let c = handles(&s);
    let mut data = Map::new();
    let mut detailed = Vec::new();
    for t in TYPES {
        let names = names(&c, t);
        for n in &names {
            detailed.push(json!({
                "builtin": true,
                "deprecation_status": "supported",
                "name": n,
                "type": t,
                "version": builtin_version(),
            }));
        }
        data.insert(t.to_owned(), json!(names));
    }
    data.insert("detailed".into(), Value::Array(detailed));
    Ok(Some(Response::data(data)))
}

/// `LIST sys/plugins/catalog/:type`.
async fn list(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    Ok(Some(Response::list(names(
        c,
        &plugin_type(f.input::<TypeInput>().kind)?,
    ))))
}

/// `GET sys/plugins/catalog/:type/:name`; an unknown name is a 404.
async fn read(s: Arc<Sys>, f: Fields) -> Result<Option<Response>> {
    let c = handles(&s);
    let PluginInput { kind, name, .. } = f.input();
    if !names(c, &plugin_type(kind)?).contains(&name) {
        return Ok(None);
    }
    Ok(Some(Response::json(json!({
        "args": [],
        "builtin": true,
        "command": "",
        "deprecation_status": "supported",
        "name": name,
        "sha256": "",
        "version": builtin_version(),
    }))))
}

async fn refuse_registration() -> Result<Option<Response>> {
    Err(LogicalError::invalid(
        "Tresor runs only its built-in plugins: registering or removing plugins is not supported",
    ))
}

/// `GET sys/internal/ui/resultant-acl`: the caller's policies merged, in Vault's shape; a
/// root token reads `{"root": true}`.
async fn resultant_acl(s: Arc<Sys>, req: Request) -> Result<Option<Response>> {
    let c = handles(&s);
    if req.caller.token_id.is_none() && req.caller.batch_token.is_none() {
        return Err(LogicalError::PermissionDenied);
    }
    let u = c.unsealed().map_err(le)?;
    if u.acl_for(&req.caller.policies, &req.caller.entity_id)
        .is_ok_and(|a| a.is_root())
    {
        return Ok(Some(Response::json(json!({"root": true}))));
    }
    // The token's policies and its entity's identity policies, templated paths rendered for
    // the entity; a path that cannot render is reported as a warning, not silently dropped.
    let entity = u.entity(&req.caller.entity_id);
    let mut names = req.caller.policies.clone();
    if let Some(r) = &entity {
        names.extend(
            r.policies
                .iter()
                .filter(|p| !req.caller.policies.contains(p))
                .cloned(),
        );
    }
    let mut warnings = Vec::new();
    let policies: Vec<_> = names
        .iter()
        .filter_map(|n| u.policies.get(n))
        .map(|p| {
            if !p.is_templated() {
                return p;
            }
            let (rendered, failed) = p.render(entity.as_ref().map(|r| &*r.info));
            warnings.extend(
                failed
                    .into_iter()
                    .map(|f| format!("policy {:?}: path {f} (left out)", p.name)),
            );
            Arc::new(rendered)
        })
        .collect();
    let mut resp = Response::json(tresor_policy::resultant_acl(&policies));
    resp.warnings = warnings;
    Ok(Some(resp))
}

pub(crate) fn paths() -> Vec<Path<Sys>> {
    vec![
        Path::new("plugins/catalog")
            .op(Operation::Read, |s, _, _| Box::pin(catalog(s)))
            .help(
                "Lists the plugins in the catalog by type.",
                "Returns the names of the built-in secrets engines (`secret`), auth methods (`auth`) and database plugins (`database`: the database engine's `plugin_name` values), and a `detailed` list with each one's type and version. Tresor runs no external plugins.",
            ),
        Path::new("plugins/catalog/{type}")
            .input::<TypeInput>()
            .op(Operation::List, |s, _, f| Box::pin(list(s, f)))
            .help(
                "Lists the plugins in the catalog of one type.",
                "Returns the names of the built-in plugins of the type (sudo).",
            ),
        Path::new("plugins/catalog/{type}/{name}")
            .input::<PluginInput>()
            .op(Operation::Read, |s, _, f| Box::pin(read(s, f)))
            .op(Operation::Update, |_, _, _| Box::pin(refuse_registration()))
            .op(Operation::Delete, |_, _, _| Box::pin(refuse_registration()))
            .help(
                "Reads a plugin of the catalog.",
                "Returns a built-in plugin's entry (sudo). Registering (PUT) and removing (DELETE) plugins are refused: Tresor runs only what is compiled in.",
            ),
        Path::new("internal/ui/resultant-acl")
            .op(Operation::Read, |s, r, _| Box::pin(resultant_acl(s, r)))
            .help(
                "Returns the calling token's merged ACL.",
                "The rules of all the token's policies merged per path, as the ACL applies them: `exact_paths` and `glob_paths` (keyed without the trailing `*`) with their capabilities, parameter constraints and wrapping TTLs, and `root`. A root token reads only `root: true`. The default policy grants it.",
            ),
    ]
}
