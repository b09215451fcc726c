//! Mount tables (`sys/mounts`, `sys/auth`) and the router that finds a request's mount.
//!
//! A mount entry is persisted in the barrier at [`MOUNTS_PATH`] / [`AUTH_PATH`]; each mount's
//! data lives in its own view (`logical/<uuid>/`, `auth/<uuid>/`), so disabling a mount is a
//! delete of that prefix. The router matches the longest mount path that prefixes the request.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tresor_sdk::{LogicalBackend, MountView, SpecialPaths};

use crate::barrier::View;

pub const MOUNTS_PATH: &str = "core/mounts";
pub const AUTH_PATH: &str = "core/auth";

/// Which table a mount belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Mounts,
    Auth,
}

/// Tunable mount configuration. TTLs are seconds; 0 means "the system default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountConfig {
    #[serde(default)]
    pub default_lease_ttl: u64,
    #[serde(default)]
    pub max_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default)]
    pub listing_visibility: String,
    #[serde(default)]
    pub audit_non_hmac_request_keys: Vec<String>,
    #[serde(default)]
    pub audit_non_hmac_response_keys: Vec<String>,
    #[serde(default)]
    pub passthrough_request_headers: Vec<String>,
    #[serde(default)]
    pub allowed_response_headers: Vec<String>,
    #[serde(default)]
    pub token_type: String,
}

/// One persisted mount. `path` has a trailing `/` and, for auth mounts, no `auth/` prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountEntry {
    #[serde(default = "one")]
    pub version: u32,
    pub table: Table,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub description: String,
    pub uuid: String,
    pub accessor: String,
    #[serde(default)]
    pub config: MountConfig,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    #[serde(default)]
    pub external_entropy_access: bool,
}

fn one() -> u32 {
    1
}

impl MountEntry {
    pub fn new(table: Table, path: &str, kind: &str, description: &str) -> Self {
        let uuid = uuid::Uuid::new_v4().to_string();
        let mut suffix = [0u8; 4];
        aws_lc_rs::rand::fill(&mut suffix).expect("randomness");
        let accessor = match table {
            Table::Mounts => format!("{kind}_{}", hex::encode(suffix)),
            Table::Auth => format!("auth_{kind}_{}", hex::encode(suffix)),
        };
        MountEntry {
            version: 1,
            table,
            path: path.to_owned(),
            kind: kind.to_owned(),
            description: description.to_owned(),
            uuid,
            accessor,
            config: MountConfig::default(),
            options: BTreeMap::new(),
            local: false,
            seal_wrap: false,
            external_entropy_access: false,
        }
    }

    /// The full router path (`secret/`, `auth/token/`).
    pub fn route_path(&self) -> String {
        match self.table {
            Table::Mounts => self.path.clone(),
            Table::Auth => format!("auth/{}", self.path),
        }
    }

    /// The storage prefix of this mount's view.
    pub fn view_prefix(&self) -> String {
        match (self.table, self.kind.as_str()) {
            (_, "system") => "sys/".to_owned(),
            (Table::Mounts, "identity") => crate::identity::PREFIX.to_owned(),
            (Table::Auth, "token") => "sys/token/".to_owned(),
            (Table::Mounts, _) => format!("logical/{}/", self.uuid),
            (Table::Auth, _) => format!("auth/{}/", self.uuid),
        }
    }

    /// Vault's mount info object, as `sys/mounts` lists it.
    pub fn info(&self) -> Value {
        let mut config = json!({
            "default_lease_ttl": self.config.default_lease_ttl,
            "max_lease_ttl": self.config.max_lease_ttl,
            "force_no_cache": self.config.force_no_cache,
        });
        if !self.config.listing_visibility.is_empty() {
            config["listing_visibility"] = json!(self.config.listing_visibility);
        }
        for (k, v) in [
            (
                "audit_non_hmac_request_keys",
                &self.config.audit_non_hmac_request_keys,
            ),
            (
                "audit_non_hmac_response_keys",
                &self.config.audit_non_hmac_response_keys,
            ),
            (
                "passthrough_request_headers",
                &self.config.passthrough_request_headers,
            ),
            (
                "allowed_response_headers",
                &self.config.allowed_response_headers,
            ),
        ] {
            if !v.is_empty() {
                config[k] = json!(v);
            }
        }
        if self.table == Table::Auth {
            config["token_type"] = json!(if self.config.token_type.is_empty() {
                "default-service"
            } else {
                &self.config.token_type
            });
        }
        json!({
            "type": self.kind,
            "description": self.description,
            "accessor": self.accessor,
            "uuid": self.uuid,
            "local": self.local,
            "seal_wrap": self.seal_wrap,
            "external_entropy_access": self.external_entropy_access,
            "options": if self.options.is_empty() { Value::Null } else { json!(self.options) },
            "plugin_version": "",
            "running_plugin_version": format!("v{}+builtin.tresor", env!("CARGO_PKG_VERSION")),
            "running_sha256": "",
            "deprecation_status": "supported",
            "config": config,
        })
    }

    pub fn mount_view(
        &self,
        sys_default: Duration,
        sys_max: Duration,
        system: Option<Arc<dyn tresor_sdk::SystemView>>,
    ) -> MountView {
        let pick = |v: u64, d: Duration| if v == 0 { d } else { Duration::from_secs(v) };
        MountView {
            mount_point: self.route_path(),
            mount_type: self.kind.clone(),
            mount_accessor: self.accessor.clone(),
            default_lease_ttl: pick(self.config.default_lease_ttl, sys_default),
            max_lease_ttl: pick(self.config.max_lease_ttl, sys_max),
            options: self.options.clone(),
            system,
        }
    }
}

/// A routable mount: its entry, engine and storage view.
#[derive(Clone)]
pub struct Route {
    pub entry: Arc<MountEntry>,
    pub backend: Arc<dyn LogicalBackend>,
    pub view: View,
    pub mount: Arc<MountView>,
    pub special: Arc<SpecialPaths>,
    /// The router path (`secret/`).
    pub path: Arc<str>,
}

/// Longest-prefix routing over all mounts. Rebuilt (copy-on-write) whenever a mount changes.
#[derive(Clone, Default)]
pub struct Router {
    /// Sorted by path length, longest first.
    routes: Vec<Route>,
}

impl Router {
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then_with(|| a.path.cmp(&b.path))
        });
        Router { routes }
    }

    /// The mount serving `path`, and the path relative to it. `secret` matches `secret/`.
    pub fn route<'a>(&self, path: &'a str) -> Option<(&Route, &'a str)> {
        self.routes.iter().find_map(|r| {
            if let Some(rest) = path.strip_prefix(&*r.path) {
                Some((r, rest))
            } else if r.path.strip_suffix('/') == Some(path) {
                Some((r, ""))
            } else {
                None
            }
        })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route mounted exactly at `path` (with trailing slash), if any.
    pub fn exact(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| &*r.path == path)
    }
}

/// Normalises a user-given mount path: no leading `/`, exactly one trailing `/`.
pub fn sanitize_path(p: &str) -> String {
    let p = p.trim_matches('/');
    format!("{p}/")
}

/// Mount paths no user may mount at or below.
pub fn protected(path: &str, table: Table) -> bool {
    match table {
        Table::Mounts => {
            ["sys/", "auth/", "cubbyhole/", "identity/"]
                .iter()
                .any(|p| path.starts_with(p))
                || path == "/"
        }
        Table::Auth => path.starts_with("token/"),
    }
}
