//! Vault's LDAP auth method: logins against a directory, its groups as identity group aliases.
//!
//! | path | operations |
//! |---|---|
//! | `config` | read, update: the directory (`url` list tried in order, TLS, bind DN, user and group search) and the logins' `token_*` settings |
//! | `groups/`, `groups/:name` | LIST; create, read, update, delete an LDAP group's `policies` |
//! | `users/`, `users/:name` | LIST; create, read, update, delete a user's extra `groups` and `policies` |
//! | `login/:username` | log in with `password` (unauthenticated) |
//!
//! **A login** binds as the user (found by `binddn` search, `upndomain`, or
//! `userattr=<name>,userdn`), searches the user's groups with `groupfilter` under `groupdn`
//! (`member=`/`uniqueMember=`/`memberUid=` on group entries, or Active Directory's `memberOf`
//! on the user's entry with `groupattr=memberOf`: DN values give their CN), and grants the
//! policies of the configured groups and user plus the config's `token_policies`. Every LDAP
//! group becomes a group alias of the login, so identity groups of type `external` with an
//! alias of that name get their policies. A wrong password and an unknown user get one
//! answer. Each URL gets one `connection_timeout` before the next is tried.
//!
//! **Renewal** checks that the policies the login would get from this mount's configuration
//! (user and group entries, config) are still those the token has; the password is not kept,
//! so the directory is not asked again.

#![forbid(unsafe_code)]

mod config;
mod directory;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path, Table};
use tresor_sdk::{
    Alias, Auth, LogicalBackend, LogicalError, Operation, Request, Response, Result, SpecialPaths,
    Storage, cidr,
};

/// What the method shares between requests.
pub(crate) struct State {
    /// Serialises configuration writes.
    writes: tokio::sync::Mutex<()>,
    /// Idle directory connections.
    pool: directory::Pool,
}

/// The auth method, ready to mount.
pub fn backend() -> Arc<dyn LogicalBackend> {
    Arc::new(Ldap {
        state: Arc::new(State {
            writes: tokio::sync::Mutex::new(()),
            pool: directory::Pool::default(),
        }),
        table: table(),
    })
}

struct Ldap {
    state: Arc<State>,
    table: Table<State>,
}

/// One answer to a failed login, whichever part was wrong.
const INVALID: &str = "ldap operation failed: failed to bind as user";

/// A group or user entry of this mount: policies (and, for users, extra groups).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
struct Entry {
    policies: Vec<String>,
    groups: Vec<String>,
}

fn key(kind: &str, name: &str, c: Option<&config::Config>) -> String {
    let sensitive = c.is_some_and(|c| c.case_sensitive_names);
    if sensitive {
        format!("{kind}/{name}")
    } else {
        format!("{kind}/{}", name.to_lowercase())
    }
}

tresor_sdk::input! {
    /// `groups/:name` and `users/:name`.
    struct EntryInput {
        name: Str, "Name of the entry.";
        policies: OptList, "Policies granted to it.";
    }
}

tresor_sdk::input! {
    /// `users/:name`, besides [`EntryInput`].
    struct UserGroupsInput {
        groups: OptList, "Groups of this mount the user belongs to besides those the directory reports.";
    }
}

tresor_sdk::input! {
    /// `login/:username`.
    struct LoginInput {
        username: Str, "The LDAP username.";
        password: Str, "The LDAP password.";
    }
}

fn entry_paths(kind: &'static str) -> Vec<Path<State>> {
    let (list, one, what) = match kind {
        "group" => ("groups/", "groups/{name}", "LDAP group"),
        _ => ("users/", "users/{name}", "LDAP user"),
    };
    let mut p = Path::<State>::new(one).input::<EntryInput>();
    if kind == "user" {
        p = p.input::<UserGroupsInput>();
    }
    vec![
        Path::new(list)
            .op(Operation::List, |_, req, _| {
                Box::pin(async move {
                    let kind = kind_of(&req);
                    let keys = req.storage.list(&format!("{kind}/")).await?;
                    Ok((!keys.is_empty()).then(|| Response::list(keys)))
                })
            })
            .help("List the entries.", ""),
        p.op(Operation::Read, |_, req, f| {
            Box::pin(async move {
                let kind = kind_of(&req);
                let c = config::load(&*req.storage).await?;
                let e: Option<Entry> = tresor_sdk::get_json(
                    &*req.storage,
                    &key(kind, &f.input::<EntryInput>().name, c.as_ref()),
                )
                .await?;
                Ok(e.map(|e| {
                    let mut m = json!({"policies": e.policies});
                    if kind == "user" {
                        m["groups"] = json!(e.groups.join(","));
                    }
                    Response::json(m)
                }))
            })
        })
        .op(Operation::Update, |s, req, f| {
            Box::pin(async move {
                let kind = kind_of(&req);
                let EntryInput { name, policies } = f.input();
                if name.trim().is_empty() {
                    return Err(LogicalError::invalid("missing name"));
                }
                let _w = s.writes.lock().await;
                let c = config::load(&*req.storage).await?;
                let k = key(kind, &name, c.as_ref());
                let mut e: Entry = tresor_sdk::get_json(&*req.storage, &k)
                    .await?
                    .unwrap_or_default();
                if let Some(p) = policies {
                    e.policies = norm(p);
                }
                let groups = (kind == "user")
                    .then(|| f.input::<UserGroupsInput>().groups)
                    .flatten();
                if let Some(g) = groups {
                    // As Vault keeps them: sorted, each once, in lower case unless names are
                    // case sensitive.
                    let sensitive = c.as_ref().is_some_and(|c| c.case_sensitive_names);
                    e.groups = g
                        .into_iter()
                        .map(|g| g.trim().to_owned())
                        .map(|g| if sensitive { g } else { g.to_lowercase() })
                        .filter(|g| !g.is_empty())
                        .collect();
                    e.groups.sort();
                    e.groups.dedup();
                }
                tresor_sdk::put_json(&*req.storage, &k, &e).await?;
                Ok(None)
            })
        })
        .op(Operation::Delete, |s, req, f| {
            Box::pin(async move {
                let kind = kind_of(&req);
                let _w = s.writes.lock().await;
                let c = config::load(&*req.storage).await?;
                req.storage
                    .delete(&key(kind, &f.input::<EntryInput>().name, c.as_ref()))
                    .await?;
                Ok(None)
            })
        })
        .help(
            if kind == "group" {
                "Manage the policies of an LDAP group."
            } else {
                "Manage the policies and extra groups of an LDAP user."
            },
            what,
        ),
    ]
}

/// `group` or `user`, from the path the request is on.
fn kind_of(req: &Request) -> &'static str {
    if req.path.starts_with("groups") {
        "group"
    } else {
        "user"
    }
}

/// Policy names as Vault keeps them: trimmed, lower case, sorted, each once.
fn norm(p: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = p
        .into_iter()
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn table() -> Table<State> {
    let mut paths = config::paths();
    paths.extend(entry_paths("group"));
    paths.extend(entry_paths("user"));
    paths.push(
        Path::new("login/{username}")
            .input::<LoginInput>()
            .op(Operation::Update, |s, req, f| Box::pin(login(s, req, f)))
            .help(
                "Log in with an LDAP username and password.",
                "Binds to the directory as the user, finds the user's groups, and issues a token with the policies of those groups and of the user.",
            ),
    );
    Table {
        help: "The LDAP auth method lets users log in with their directory username and password; their LDAP groups map to policies and to identity group aliases.",
        special: SpecialPaths {
            unauthenticated: vec!["login/*".into()],
            root: Vec::new(),
        },
        paths,
    }
}

/// The policies a login of `username` in `groups` gets from this mount's configuration,
/// with the groups that matched a group entry (as the directory spelled them).
async fn policies_for(
    storage: &dyn Storage,
    c: &config::Config,
    username: &str,
    ldap_groups: &[String],
) -> Result<(Vec<String>, Vec<String>)> {
    let user: Entry = tresor_sdk::get_json(storage, &key("user", username, Some(c)))
        .await?
        .unwrap_or_default();
    let mut all_groups: Vec<String> = ldap_groups.to_vec();
    for g in &user.groups {
        if !all_groups.iter().any(|x| x.eq_ignore_ascii_case(g)) {
            all_groups.push(g.clone());
        }
    }
    let mut policies = c.token.token_policies.clone();
    policies.extend(user.policies.iter().cloned());
    for g in &all_groups {
        if let Some(e) = tresor_sdk::get_json::<Entry>(storage, &key("group", g, Some(c))).await? {
            policies.extend(e.policies);
        }
    }
    Ok((norm(policies), all_groups))
}

async fn login(s: Arc<State>, req: Request, f: Fields) -> Result<Option<Response>> {
    let c = config::load(&*req.storage)
        .await?
        .ok_or_else(|| LogicalError::invalid("ldap backend not configured"))?;
    let LoginInput { username, password } = f.input();
    let mut username = username.trim().to_owned();
    if !c.case_sensitive_names {
        username = username.to_lowercase();
    }
    if username.is_empty() {
        return Err(LogicalError::invalid("missing username"));
    }
    if password.is_empty() && c.deny_null_bind {
        return Err(LogicalError::invalid(
            "password cannot be of zero length when passwordless binds are being denied",
        ));
    }
    let Some(found) = directory::authenticate(&s.pool, &c, &username, &password).await? else {
        return Err(LogicalError::invalid(INVALID));
    };
    let blocks = cidr::parse_list(&c.token.token_bound_cidrs).map_err(LogicalError::Internal)?;
    if !cidr::allows(&blocks, req.connection.remote_addr.as_deref()) {
        return Err(LogicalError::PermissionDenied);
    }
    let (policies, groups) = policies_for(&*req.storage, &c, &username, &found.groups).await?;
    let alias_name = if c.username_as_alias {
        username.clone()
    } else {
        found.user_attr_value.clone()
    };
    let mut internal = Map::new();
    internal.insert("username".into(), json!(username));
    internal.insert("policies".into(), json!(policies));
    internal.insert("user_dn".into(), json!(found.user_dn));
    let mut auth = Auth {
        display_name: username.clone(),
        metadata: BTreeMap::from([("username".to_owned(), username.clone())]),
        alias: Some(Alias {
            name: alias_name,
            metadata: BTreeMap::new(),
        }),
        group_aliases: groups
            .iter()
            .map(|g| Alias {
                name: g.clone(),
                metadata: BTreeMap::new(),
            })
            .collect(),
        renewable: true,
        internal_data: internal,
        ..Default::default()
    };
    c.token.populate(&mut auth);
    auth.policies = policies;
    if auth.policies.is_empty() && auth.no_default_policy {
        return Err(LogicalError::invalid("user has no policies"));
    }
    Ok(Some(Response {
        auth: Some(auth),
        ..Default::default()
    }))
}

async fn renew(req: Request) -> Result<Option<Response>> {
    let data = req
        .secret
        .as_ref()
        .map(|s| s.internal_data.clone())
        .unwrap_or_default();
    let username = data
        .get("username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let had: Vec<String> = data
        .get("policies")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let c = config::load(&*req.storage)
        .await?
        .ok_or_else(|| LogicalError::invalid("ldap backend not configured"))?;
    // The groups the directory reported at login are not kept; the group entries of this
    // mount are checked through the user's extra groups and the config only.
    let (now, _) = policies_for(&*req.storage, &c, username, &[]).await?;
    if now.iter().any(|p| !had.contains(p)) {
        return Err(LogicalError::invalid("policies have changed, not renewing"));
    }
    let mut auth = Auth::default();
    c.token.populate(&mut auth);
    Ok(Some(Response {
        auth: Some(Auth {
            ttl: auth.ttl,
            max_ttl: auth.max_ttl,
            ..Default::default()
        }),
        ..Default::default()
    }))
}

#[async_trait]
impl LogicalBackend for Ldap {
    async fn handle(&self, req: Request) -> Result<Option<Response>> {
        self.table.handle(self.state.clone(), req).await
    }
    async fn exists(&self, req: &Request) -> Result<Option<bool>> {
        self.table.exists(self.state.clone(), req).await
    }
    fn canonical_path(&self, path: &str) -> Option<String> {
        self.table.canonical_path(path)
    }
    fn special_paths(&self) -> SpecialPaths {
        self.table.special.clone()
    }
    fn help(&self, path: &str) -> Option<Map<String, Value>> {
        self.table.help(path)
    }
    fn openapi_paths(&self) -> Map<String, Value> {
        self.table.openapi_paths()
    }
    async fn renew_auth(&self, req: Request) -> Result<Option<Response>> {
        renew(req).await
    }
}
