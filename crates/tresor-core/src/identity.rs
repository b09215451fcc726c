//! The identity store: entities and their aliases, groups and group aliases, persisted behind
//! the barrier under `sys/identity/` and held in memory with their indexes.
//!
//! A login's alias (auth mount accessor + name) resolves to an entity, created on first login.
//! Every request of a token with an entity resolves it again ([`IdentityStore::resolve`],
//! cached until the next identity or mount change): the entity's own policies and those of
//! every group it belongs to (directly or through parent groups) are the token's
//! `identity_policies`, so a group policy granted later applies to a live token at once.
//!
//! Writes are serialised (`writes`), reach storage first and memory second, and bump
//! `generation`, which invalidates every resolution and every compiled ACL built from one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tresor_sdk::Storage;
use tresor_sdk::identity::{AliasInfo, EntityInfo, GroupInfo};

use crate::barrier::View;
use crate::error::CoreError;

/// The storage prefix of the identity store (and the view of the `identity/` mount).
pub const PREFIX: &str = "sys/identity/";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Entity {
    pub id: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub policies: Vec<String>,
    pub disabled: bool,
    pub aliases: Vec<EntityAlias>,
    pub merged_entity_ids: Vec<String>,
    pub creation_time: String,
    pub last_update_time: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EntityAlias {
    pub id: String,
    pub canonical_id: String,
    pub mount_accessor: String,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    pub custom_metadata: BTreeMap<String, String>,
    pub merged_from_canonical_ids: Vec<String>,
    pub creation_time: String,
    pub last_update_time: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// `internal` (members listed here) or `external` (members follow the group alias).
    #[serde(rename = "type")]
    pub kind: String,
    pub metadata: BTreeMap<String, String>,
    pub policies: Vec<String>,
    pub member_entity_ids: Vec<String>,
    pub member_group_ids: Vec<String>,
    pub alias: Option<GroupAlias>,
    pub modify_index: u64,
    pub creation_time: String,
    pub last_update_time: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct GroupAlias {
    pub id: String,
    pub canonical_id: String,
    pub mount_accessor: String,
    pub name: String,
    pub creation_time: String,
    pub last_update_time: String,
}

/// An entity resolved for one request: what templates see and the identity policies.
#[derive(Debug)]
pub struct Resolved {
    pub info: Arc<EntityInfo>,
    /// The entity's policies and those of all its groups, normalised, without duplicates.
    pub policies: Vec<String>,
    /// The store generation this was computed at (the ACL cache compares it).
    pub generation: u64,
}

#[derive(Default)]
struct State {
    entities: HashMap<String, Arc<Entity>>,
    /// Lowercased entity name → id.
    entity_names: HashMap<String, String>,
    /// An id merged into another entity → the entity it lives on in.
    merged: HashMap<String, String>,
    /// Alias id → entity id.
    alias_ids: HashMap<String, String>,
    /// (mount accessor, alias name) → alias id.
    alias_keys: HashMap<(String, String), String>,
    groups: HashMap<String, Arc<Group>>,
    group_names: HashMap<String, String>,
    /// Group alias id → group id.
    group_alias_ids: HashMap<String, String>,
    group_alias_keys: HashMap<(String, String), String>,
    /// Entity id → the groups that list it.
    entity_groups: HashMap<String, BTreeSet<String>>,
    /// Group id → the groups that list it as a member.
    group_parents: HashMap<String, BTreeSet<String>>,
}

impl State {
    fn index_entity(&mut self, e: Arc<Entity>) {
        self.unindex_entity(&e.id);
        self.entity_names
            .insert(e.name.to_lowercase(), e.id.clone());
        for a in &e.aliases {
            self.alias_ids.insert(a.id.clone(), e.id.clone());
            self.alias_keys
                .insert((a.mount_accessor.clone(), a.name.clone()), a.id.clone());
        }
        for m in &e.merged_entity_ids {
            self.merged.insert(m.clone(), e.id.clone());
        }
        self.entities.insert(e.id.clone(), e);
    }

    fn unindex_entity(&mut self, id: &str) -> Option<Arc<Entity>> {
        let e = self.entities.remove(id)?;
        if self.entity_names.get(&e.name.to_lowercase()) == Some(&e.id) {
            self.entity_names.remove(&e.name.to_lowercase());
        }
        for a in &e.aliases {
            self.alias_ids.remove(&a.id);
            self.alias_keys
                .remove(&(a.mount_accessor.clone(), a.name.clone()));
        }
        for m in &e.merged_entity_ids {
            self.merged.remove(m);
        }
        Some(e)
    }

    fn index_group(&mut self, g: Arc<Group>) {
        self.unindex_group(&g.id);
        self.group_names.insert(g.name.to_lowercase(), g.id.clone());
        if let Some(a) = &g.alias {
            self.group_alias_ids.insert(a.id.clone(), g.id.clone());
            self.group_alias_keys
                .insert((a.mount_accessor.clone(), a.name.clone()), g.id.clone());
        }
        for m in &g.member_entity_ids {
            self.entity_groups
                .entry(m.clone())
                .or_default()
                .insert(g.id.clone());
        }
        for m in &g.member_group_ids {
            self.group_parents
                .entry(m.clone())
                .or_default()
                .insert(g.id.clone());
        }
        self.groups.insert(g.id.clone(), g);
    }

    fn unindex_group(&mut self, id: &str) -> Option<Arc<Group>> {
        let g = self.groups.remove(id)?;
        if self.group_names.get(&g.name.to_lowercase()) == Some(&g.id) {
            self.group_names.remove(&g.name.to_lowercase());
        }
        if let Some(a) = &g.alias {
            self.group_alias_ids.remove(&a.id);
            self.group_alias_keys
                .remove(&(a.mount_accessor.clone(), a.name.clone()));
        }
        for m in &g.member_entity_ids {
            if let Some(s) = self.entity_groups.get_mut(m) {
                s.remove(&g.id);
            }
        }
        for m in &g.member_group_ids {
            if let Some(s) = self.group_parents.get_mut(m) {
                s.remove(&g.id);
            }
        }
        Some(g)
    }

    /// The entity an id names, following merges.
    fn entity(&self, id: &str) -> Option<&Arc<Entity>> {
        self.entities
            .get(id)
            .or_else(|| self.merged.get(id).and_then(|to| self.entities.get(to)))
    }

    /// Groups an entity belongs to: (direct, inherited through parent groups).
    fn groups_of(&self, entity_id: &str) -> (Vec<String>, Vec<String>) {
        let direct: Vec<String> = self
            .entity_groups
            .get(entity_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let mut seen: HashSet<String> = direct.iter().cloned().collect();
        let mut inherited = Vec::new();
        let mut queue: VecDeque<String> = direct.iter().cloned().collect();
        while let Some(g) = queue.pop_front() {
            for p in self.group_parents.get(&g).into_iter().flatten() {
                if seen.insert(p.clone()) {
                    inherited.push(p.clone());
                    queue.push_back(p.clone());
                }
            }
        }
        (direct, inherited)
    }

    /// Whether making `child` a member of `parent` would close a cycle.
    fn would_cycle(&self, parent: &str, child: &str) -> bool {
        let mut queue = VecDeque::from([parent.to_owned()]);
        let mut seen = HashSet::new();
        while let Some(g) = queue.pop_front() {
            if g == child {
                return true;
            }
            if seen.insert(g.clone()) {
                queue.extend(self.group_parents.get(&g).into_iter().flatten().cloned());
            }
        }
        false
    }
}

/// A built-in's state that holds the identity store (path modules of `identity/` are written
/// over this, not over the backend that chains them).
pub trait HasIdentity {
    fn identity(&self) -> &IdentityStore;
}

/// Auth mounts by accessor: (full path `auth/x/`, type).
type Mounts = HashMap<String, (String, String)>;

pub struct IdentityStore {
    view: View,
    state: RwLock<State>,
    writes: tokio::sync::Mutex<()>,
    generation: AtomicU64,
    resolved: RwLock<HashMap<String, Arc<Resolved>>>,
    mounts: RwLock<Mounts>,
    /// Login MFA: methods, enforcements, enrolled secrets, pending logins.
    pub mfa: crate::mfa::MfaStore,
    /// The OIDC provider's authorization codes waiting for their exchange (in memory).
    pub(crate) provider_codes: crate::identity_provider::Codes,
}

fn sdk(e: tresor_sdk::LogicalError) -> CoreError {
    CoreError::from(e)
}

fn invalid(m: impl Into<String>) -> CoreError {
    CoreError::InvalidRequest(m.into())
}

pub fn now() -> String {
    crate::audit::now_rfc3339()
}

pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Policy names as the policy store keeps them, without duplicates, in order.
pub fn normalize_policies(p: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(p.len());
    for n in p {
        let n = crate::policies::normalize(n);
        if !n.is_empty() && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The policies sent for an entity or a group, normalised. `root` is refused, as in Vault:
/// a login could never be given it, and a token's identity must not claim it either.
fn identity_policies(p: &[String]) -> Result<Vec<String>, CoreError> {
    let p = normalize_policies(p);
    if p.iter().any(|n| n == "root") {
        return Err(invalid("policies cannot contain root"));
    }
    Ok(p)
}

impl IdentityStore {
    pub async fn open(view: View) -> Result<Self, CoreError> {
        let store = IdentityStore {
            mfa: crate::mfa::MfaStore::open(view.clone()).await?,
            provider_codes: Default::default(),
            view,
            state: RwLock::new(State::default()),
            writes: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(1),
            resolved: RwLock::new(HashMap::new()),
            mounts: RwLock::new(HashMap::new()),
        };
        let mut state = State::default();
        for id in store.view.list("entity/").await.map_err(sdk)? {
            if let Some(e) = store.load::<Entity>(&format!("entity/{id}")).await? {
                state.index_entity(Arc::new(e));
            }
        }
        for id in store.view.list("group/").await.map_err(sdk)? {
            if let Some(g) = store.load::<Group>(&format!("group/{id}")).await? {
                state.index_group(Arc::new(g));
            }
        }
        *store.state.write() = state;
        Ok(store)
    }

    async fn load<T: for<'de> Deserialize<'de>>(&self, key: &str) -> Result<Option<T>, CoreError> {
        match self.view.get(key).await.map_err(sdk)? {
            None => Ok(None),
            Some(b) => match serde_json::from_slice(&b) {
                Ok(v) => Ok(Some(v)),
                Err(e) => {
                    tracing::error!(key, error = %e, "identity record does not decode; skipping it");
                    Ok(None)
                }
            },
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn changed(&self) {
        let mut r = self.resolved.write();
        self.generation.fetch_add(1, Ordering::SeqCst);
        r.clear();
    }

    /// The auth mounts (accessor → path, type), refreshed by the core on every mount change.
    pub fn set_mounts(&self, mounts: impl IntoIterator<Item = (String, String, String)>) {
        *self.mounts.write() = mounts.into_iter().map(|(a, p, t)| (a, (p, t))).collect();
        self.changed();
    }

    pub fn mount(&self, accessor: &str) -> Option<(String, String)> {
        self.mounts.read().get(accessor).cloned()
    }

    // ---- reads --------------------------------------------------------------------------

    pub fn entity(&self, id: &str) -> Option<Arc<Entity>> {
        self.state.read().entity(id).cloned()
    }

    pub fn entity_by_name(&self, name: &str) -> Option<Arc<Entity>> {
        let s = self.state.read();
        s.entity_names
            .get(&name.to_lowercase())
            .and_then(|id| s.entities.get(id))
            .cloned()
    }

    pub fn entities(&self) -> Vec<Arc<Entity>> {
        let mut v: Vec<_> = self.state.read().entities.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// (alias, the entity holding it)
    pub fn alias(&self, id: &str) -> Option<(EntityAlias, Arc<Entity>)> {
        let s = self.state.read();
        let e = s.alias_ids.get(id).and_then(|eid| s.entities.get(eid))?;
        let a = e.aliases.iter().find(|a| a.id == id)?.clone();
        Some((a, e.clone()))
    }

    pub fn alias_by_name(&self, accessor: &str, name: &str) -> Option<(EntityAlias, Arc<Entity>)> {
        let id = self
            .state
            .read()
            .alias_keys
            .get(&(accessor.to_owned(), name.to_owned()))
            .cloned()?;
        self.alias(&id)
    }

    pub fn group(&self, id: &str) -> Option<Arc<Group>> {
        self.state.read().groups.get(id).cloned()
    }

    pub fn group_by_name(&self, name: &str) -> Option<Arc<Group>> {
        let s = self.state.read();
        s.group_names
            .get(&name.to_lowercase())
            .and_then(|id| s.groups.get(id))
            .cloned()
    }

    pub fn groups(&self) -> Vec<Arc<Group>> {
        let mut v: Vec<_> = self.state.read().groups.values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn group_alias(&self, id: &str) -> Option<(GroupAlias, Arc<Group>)> {
        let s = self.state.read();
        let g = s
            .group_alias_ids
            .get(id)
            .and_then(|gid| s.groups.get(gid))?;
        Some((g.alias.clone()?, g.clone()))
    }

    pub fn group_by_alias(&self, accessor: &str, name: &str) -> Option<Arc<Group>> {
        let s = self.state.read();
        s.group_alias_keys
            .get(&(accessor.to_owned(), name.to_owned()))
            .and_then(|id| s.groups.get(id))
            .cloned()
    }

    /// (direct group ids, inherited group ids) of an entity.
    pub fn groups_of(&self, entity_id: &str) -> (Vec<String>, Vec<String>) {
        self.state.read().groups_of(entity_id)
    }

    /// Groups that list `group_id` as a member.
    pub fn parents_of(&self, group_id: &str) -> Vec<String> {
        self.state
            .read()
            .group_parents
            .get(group_id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The entity behind a token, with its identity policies; `None` if it does not exist.
    pub fn resolve(&self, entity_id: &str) -> Option<Arc<Resolved>> {
        if entity_id.is_empty() {
            return None;
        }
        if let Some(r) = self.resolved.read().get(entity_id) {
            return Some(r.clone());
        }
        let generation = self.generation();
        let resolved = {
            let s = self.state.read();
            let e = s.entity(entity_id)?;
            let (direct, inherited) = s.groups_of(&e.id);
            let mut policies = e.policies.clone();
            let mut groups = Vec::new();
            for gid in direct.iter().chain(&inherited) {
                if let Some(g) = s.groups.get(gid) {
                    policies.extend(g.policies.iter().cloned());
                    groups.push(GroupInfo {
                        id: g.id.clone(),
                        name: g.name.clone(),
                    });
                }
            }
            let mounts = self.mounts.read();
            let aliases = e
                .aliases
                .iter()
                .map(|a| {
                    let (mount_path, mount_type) =
                        mounts.get(&a.mount_accessor).cloned().unwrap_or_default();
                    AliasInfo {
                        id: a.id.clone(),
                        name: a.name.clone(),
                        mount_accessor: a.mount_accessor.clone(),
                        mount_path,
                        mount_type,
                        metadata: a.metadata.clone(),
                        custom_metadata: a.custom_metadata.clone(),
                    }
                })
                .collect();
            Arc::new(Resolved {
                info: Arc::new(EntityInfo {
                    id: e.id.clone(),
                    name: e.name.clone(),
                    metadata: e.metadata.clone(),
                    aliases,
                    groups,
                    disabled: e.disabled,
                }),
                policies: normalize_policies(&policies),
                generation,
            })
        };
        let mut cache = self.resolved.write();
        if self.generation() == generation {
            cache.insert(entity_id.to_owned(), resolved.clone());
        }
        Some(resolved)
    }

    // ---- writes -------------------------------------------------------------------------

    async fn put_entity(&self, e: &Entity) -> Result<(), CoreError> {
        let b = serde_json::to_vec(e).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.view
            .put(&format!("entity/{}", e.id), b)
            .await
            .map_err(sdk)
    }

    async fn put_group(&self, g: &Group) -> Result<(), CoreError> {
        let b = serde_json::to_vec(g).map_err(|e| CoreError::Internal(e.to_string()))?;
        self.view
            .put(&format!("group/{}", g.id), b)
            .await
            .map_err(sdk)
    }

    /// Stores entities and groups, then indexes them: storage first, memory second.
    async fn commit(&self, entities: Vec<Entity>, groups: Vec<Group>) -> Result<(), CoreError> {
        for e in &entities {
            self.put_entity(e).await?;
        }
        for g in &groups {
            self.put_group(g).await?;
        }
        {
            let mut s = self.state.write();
            for e in entities {
                s.index_entity(Arc::new(e));
            }
            for g in groups {
                s.index_group(Arc::new(g));
            }
        }
        self.changed();
        Ok(())
    }

    /// Resolves a login's alias to its entity, creating both on first login, and updates the
    /// entity's membership of the external groups the login reported for this mount.
    pub async fn login(
        &self,
        accessor: &str,
        alias: &tresor_sdk::Alias,
        group_aliases: &[tresor_sdk::Alias],
    ) -> Result<String, CoreError> {
        if alias.name.is_empty() {
            return Ok(String::new());
        }
        // Fast path: a known alias with the same metadata and the same external groups.
        if let Some(id) = self.login_unchanged(accessor, alias, group_aliases) {
            return Ok(id);
        }
        let _w = self.writes.lock().await;
        let existing = self.alias_by_name(accessor, &alias.name);
        let now = now();
        let mut entity = match existing {
            Some((_, e)) => (*e).clone(),
            None => {
                let id = new_id();
                Entity {
                    name: format!("entity_{}", &id[..8]),
                    id,
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                }
            }
        };
        let mut entity_changed = false;
        match entity
            .aliases
            .iter_mut()
            .find(|a| a.mount_accessor == accessor && a.name == alias.name)
        {
            Some(a) => {
                if a.metadata != alias.metadata {
                    a.metadata = alias.metadata.clone();
                    a.last_update_time = now.clone();
                    entity_changed = true;
                }
            }
            None => {
                entity.aliases.push(EntityAlias {
                    id: new_id(),
                    canonical_id: entity.id.clone(),
                    mount_accessor: accessor.to_owned(),
                    name: alias.name.clone(),
                    metadata: alias.metadata.clone(),
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                });
                entity_changed = true;
            }
        }
        let groups = self.external_group_changes(accessor, &entity.id, group_aliases);
        let id = entity.id.clone();
        let entities = if entity_changed {
            vec![entity]
        } else {
            Vec::new()
        };
        if !entities.is_empty() || !groups.is_empty() {
            self.commit(entities, groups).await?;
        }
        Ok(id)
    }

    fn login_unchanged(
        &self,
        accessor: &str,
        alias: &tresor_sdk::Alias,
        group_aliases: &[tresor_sdk::Alias],
    ) -> Option<String> {
        let (a, e) = self.alias_by_name(accessor, &alias.name)?;
        (a.metadata == alias.metadata
            && self
                .external_group_changes(accessor, &e.id, group_aliases)
                .is_empty())
        .then(|| e.id.clone())
    }

    /// External groups (with an alias on `accessor`) whose membership must change so that the
    /// entity is in exactly the groups the login reported.
    fn external_group_changes(
        &self,
        accessor: &str,
        entity_id: &str,
        group_aliases: &[tresor_sdk::Alias],
    ) -> Vec<Group> {
        let s = self.state.read();
        let now = now();
        let mut out = Vec::new();
        for g in s.groups.values() {
            let Some(ga) = g.alias.as_ref().filter(|a| a.mount_accessor == accessor) else {
                continue;
            };
            let want = group_aliases.iter().any(|x| x.name == ga.name);
            let has = g.member_entity_ids.iter().any(|m| m == entity_id);
            if want != has {
                let mut g = (**g).clone();
                if want {
                    g.member_entity_ids.push(entity_id.to_owned());
                } else {
                    g.member_entity_ids.retain(|m| m != entity_id);
                }
                g.modify_index += 1;
                g.last_update_time = now.clone();
                out.push(g);
            }
        }
        out
    }

    /// Creates or updates an entity (`identity/entity`, `entity/id/:id`, `entity/name/:name`).
    /// Returns the entity and whether it was created.
    pub async fn write_entity(
        &self,
        id: Option<&str>,
        name_key: Option<&str>,
        fields: EntityFields,
    ) -> Result<(Arc<Entity>, bool), CoreError> {
        let _w = self.writes.lock().await;
        let existing = match (id, name_key) {
            (Some(id), _) => Some(
                self.entity(id)
                    .ok_or_else(|| invalid(format!("entity with ID {id:?} not found")))?,
            ),
            (None, Some(n)) => self.entity_by_name(n),
            (None, None) => fields.name.as_deref().and_then(|n| self.entity_by_name(n)),
        };
        let now = now();
        let created = existing.is_none();
        let mut e = match existing {
            Some(e) => (*e).clone(),
            None => {
                let id = new_id();
                Entity {
                    name: format!("entity_{}", &id[..8]),
                    id,
                    creation_time: now.clone(),
                    ..Default::default()
                }
            }
        };
        if let Some(n) = name_key {
            e.name = n.to_owned();
        }
        if let Some(n) = fields.name.filter(|n| !n.is_empty()) {
            if let Some(other) = self.entity_by_name(&n).filter(|o| o.id != e.id) {
                return Err(invalid(format!(
                    "entity name is already in use (entity {})",
                    other.id
                )));
            }
            e.name = n;
        }
        check_name(&e.name, "entity")?;
        if let Some(m) = fields.metadata {
            e.metadata = m;
        }
        if let Some(p) = fields.policies {
            e.policies = identity_policies(&p)?;
        }
        if let Some(d) = fields.disabled {
            e.disabled = d;
        }
        e.last_update_time = now;
        self.commit(vec![e.clone()], Vec::new()).await?;
        Ok((Arc::new(e), created))
    }

    /// Deletes entities with their aliases, and takes them out of every group.
    pub async fn delete_entities(&self, ids: &[String]) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        let mut groups = Vec::new();
        for id in ids {
            let Some(e) = self.entity(id) else { continue };
            self.view
                .delete(&format!("entity/{}", e.id))
                .await
                .map_err(sdk)?;
            self.state.write().unindex_entity(&e.id);
            let s = self.state.read();
            for g in s.groups.values() {
                if g.member_entity_ids.contains(&e.id) {
                    let mut g = groups
                        .iter()
                        .position(|x: &Group| x.id == g.id)
                        .map(|i| groups.remove(i))
                        .unwrap_or_else(|| (**g).clone());
                    g.member_entity_ids.retain(|m| m != &e.id);
                    groups.push(g);
                }
            }
        }
        self.commit(Vec::new(), groups).await
    }

    /// Creates or updates an entity alias. Returns the alias and whether it was created.
    pub async fn write_alias(
        &self,
        id: Option<&str>,
        fields: AliasFields,
    ) -> Result<EntityAlias, CoreError> {
        let _w = self.writes.lock().await;
        let now = now();
        let (mut alias, old_entity) = match id {
            Some(id) => {
                let (a, e) = self
                    .alias(id)
                    .ok_or_else(|| invalid(format!("entity alias with ID {id:?} not found")))?;
                (a, Some(e))
            }
            None => (
                EntityAlias {
                    id: new_id(),
                    creation_time: now.clone(),
                    ..Default::default()
                },
                None,
            ),
        };
        if let Some(n) = fields.name {
            alias.name = n;
        }
        if let Some(a) = fields.mount_accessor {
            alias.mount_accessor = a;
        }
        if let Some(c) = fields.canonical_id {
            alias.canonical_id = c;
        }
        if let Some(m) = fields.custom_metadata {
            alias.custom_metadata = m;
        }
        if alias.name.is_empty() {
            return Err(invalid("missing alias name"));
        }
        if alias.mount_accessor.is_empty() {
            return Err(invalid("missing mount_accessor"));
        }
        if self.mount(&alias.mount_accessor).is_none() {
            return Err(invalid(format!(
                "invalid mount accessor {:?}",
                alias.mount_accessor
            )));
        }
        let target = match alias.canonical_id.as_str() {
            // No entity named: the alias gets a new entity of its own, as in Vault.
            "" => {
                let id = new_id();
                Arc::new(Entity {
                    name: format!("entity_{}", &id[..8]),
                    id,
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                })
            }
            c => self
                .entity(c)
                .ok_or_else(|| invalid(format!("entity with ID {c:?} not found")))?,
        };
        alias.canonical_id = target.id.clone();
        if let Some((other, _)) = self.alias_by_name(&alias.mount_accessor, &alias.name)
            && other.id != alias.id
        {
            return Err(invalid(
                "combination of mount and alias name is already in use",
            ));
        }
        if target
            .aliases
            .iter()
            .any(|a| a.mount_accessor == alias.mount_accessor && a.id != alias.id)
        {
            return Err(invalid(
                "alias already exists for requested entity and mount accessor",
            ));
        }
        alias.last_update_time = now;
        let mut entities = Vec::new();
        if let Some(old) = old_entity.filter(|o| o.id != target.id) {
            let mut old = (*old).clone();
            old.aliases.retain(|a| a.id != alias.id);
            entities.push(old);
        }
        let mut t = (*target).clone();
        t.aliases.retain(|a| a.id != alias.id);
        t.aliases.push(alias.clone());
        entities.push(t);
        self.commit(entities, Vec::new()).await?;
        Ok(alias)
    }

    pub async fn delete_alias(&self, id: &str) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        let Some((_, e)) = self.alias(id) else {
            return Ok(());
        };
        let mut e = (*e).clone();
        e.aliases.retain(|a| a.id != id);
        self.commit(vec![e], Vec::new()).await
    }

    /// Merges entities into `to`: their aliases, policies and group memberships move, and
    /// tokens of the merged entities resolve to `to` from now on.
    pub async fn merge(
        &self,
        from: &[String],
        to: &str,
        force: bool,
        keep: &[String],
    ) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        let target = self
            .entity(to)
            .ok_or_else(|| invalid(format!("entity with ID {to:?} not found")))?;
        let mut t = (*target).clone();
        let mut sources = Vec::new();
        for id in from {
            if id == &t.id {
                return Err(invalid(
                    "to_entity_id should not be present in from_entity_ids",
                ));
            }
            let e = self
                .state
                .read()
                .entities
                .get(id)
                .cloned()
                .ok_or_else(|| invalid(format!("entity with ID {id:?} not found")))?;
            sources.push(e);
        }
        let now = now();
        for src in &sources {
            for a in &src.aliases {
                let clash = t
                    .aliases
                    .iter()
                    .position(|x| x.mount_accessor == a.mount_accessor);
                if let Some(i) = clash {
                    if keep.contains(&a.id) {
                        t.aliases.remove(i);
                    } else if keep.contains(&t.aliases[i].id) || force {
                        continue;
                    } else {
                        return Err(invalid(format!(
                            "conflicting mount accessors in following alias IDs: {}, {}",
                            t.aliases[i].id, a.id
                        )));
                    }
                }
                let mut a = a.clone();
                a.merged_from_canonical_ids.push(src.id.clone());
                a.canonical_id = t.id.clone();
                a.last_update_time = now.clone();
                t.aliases.push(a);
            }
            t.policies.extend(src.policies.iter().cloned());
            t.merged_entity_ids.push(src.id.clone());
            t.merged_entity_ids
                .extend(src.merged_entity_ids.iter().cloned());
        }
        t.policies = normalize_policies(&t.policies);
        t.last_update_time = now.clone();
        // Groups that listed a merged entity list the target instead.
        let mut groups = Vec::new();
        for g in self.groups() {
            if sources.iter().any(|s| g.member_entity_ids.contains(&s.id)) {
                let mut g = (*g).clone();
                g.member_entity_ids
                    .retain(|m| !sources.iter().any(|s| &s.id == m));
                if !g.member_entity_ids.contains(&t.id) {
                    g.member_entity_ids.push(t.id.clone());
                }
                g.modify_index += 1;
                g.last_update_time = now.clone();
                groups.push(g);
            }
        }
        for src in &sources {
            self.view
                .delete(&format!("entity/{}", src.id))
                .await
                .map_err(sdk)?;
            self.state.write().unindex_entity(&src.id);
        }
        self.commit(vec![t], groups).await
    }

    /// Creates or updates a group. Returns it and whether it was created.
    pub async fn write_group(
        &self,
        id: Option<&str>,
        name_key: Option<&str>,
        fields: GroupFields,
    ) -> Result<(Arc<Group>, bool), CoreError> {
        let _w = self.writes.lock().await;
        let existing = match (id, name_key) {
            (Some(id), _) => Some(
                self.group(id)
                    .ok_or_else(|| invalid(format!("group with ID {id:?} not found")))?,
            ),
            (None, Some(n)) => self.group_by_name(n),
            (None, None) => fields.name.as_deref().and_then(|n| self.group_by_name(n)),
        };
        let now = now();
        let created = existing.is_none();
        let mut g = match existing {
            Some(g) => (*g).clone(),
            None => {
                let id = new_id();
                Group {
                    name: format!("group_{}", &id[..8]),
                    id,
                    kind: "internal".into(),
                    creation_time: now.clone(),
                    ..Default::default()
                }
            }
        };
        if let Some(n) = name_key {
            g.name = n.to_owned();
        }
        if let Some(n) = fields.name.filter(|n| !n.is_empty()) {
            if let Some(other) = self.group_by_name(&n).filter(|o| o.id != g.id) {
                return Err(invalid(format!(
                    "group name is already in use (group {})",
                    other.id
                )));
            }
            g.name = n;
        }
        check_name(&g.name, "group")?;
        if let Some(k) = fields.kind.filter(|k| !k.is_empty()) {
            let k = k.to_lowercase();
            if k != "internal" && k != "external" {
                return Err(invalid(format!("invalid group type {k:?}")));
            }
            if !created && k != g.kind {
                return Err(invalid("group type cannot be changed"));
            }
            g.kind = k;
        }
        if let Some(m) = fields.metadata {
            g.metadata = m;
        }
        if let Some(p) = fields.policies {
            g.policies = identity_policies(&p)?;
        }
        if let Some(members) = fields.member_entity_ids {
            if g.kind == "external" && !members.is_empty() {
                return Err(invalid(
                    "member entities can't be set manually for external groups",
                ));
            }
            for m in &members {
                if self.entity(m).is_none() {
                    return Err(invalid(format!("entity with ID {m:?} not found")));
                }
            }
            g.member_entity_ids = dedup(members);
        }
        if let Some(members) = fields.member_group_ids {
            let s = self.state.read();
            for m in &members {
                if !s.groups.contains_key(m) {
                    return Err(invalid(format!("group with ID {m:?} not found")));
                }
                if m == &g.id || s.would_cycle(&g.id, m) {
                    return Err(invalid(format!(
                        "member group ID {m:?} is already a parent of group {:?}: cyclic group membership",
                        g.id
                    )));
                }
            }
            g.member_group_ids = dedup(members);
        }
        g.modify_index += 1;
        g.last_update_time = now;
        self.commit(Vec::new(), vec![g.clone()]).await?;
        Ok((Arc::new(g), created))
    }

    pub async fn delete_group(&self, id: &str) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        let Some(g) = self.group(id) else {
            return Ok(());
        };
        self.view
            .delete(&format!("group/{}", g.id))
            .await
            .map_err(sdk)?;
        self.state.write().unindex_group(&g.id);
        // Parents stop listing it.
        let mut parents = Vec::new();
        for p in self.groups() {
            if p.member_group_ids.contains(&g.id) {
                let mut p = (*p).clone();
                p.member_group_ids.retain(|m| m != &g.id);
                parents.push(p);
            }
        }
        self.commit(Vec::new(), parents).await
    }

    /// Creates or updates a group alias (external groups only).
    pub async fn write_group_alias(
        &self,
        id: Option<&str>,
        name: Option<String>,
        accessor: Option<String>,
        canonical_id: Option<String>,
    ) -> Result<GroupAlias, CoreError> {
        let _w = self.writes.lock().await;
        let now = now();
        let (mut alias, old_group) = match id {
            Some(id) => {
                let (a, g) = self
                    .group_alias(id)
                    .ok_or_else(|| invalid(format!("group alias with ID {id:?} not found")))?;
                (a, Some(g))
            }
            None => (
                GroupAlias {
                    id: new_id(),
                    creation_time: now.clone(),
                    ..Default::default()
                },
                None,
            ),
        };
        if let Some(n) = name {
            alias.name = n;
        }
        if let Some(a) = accessor {
            alias.mount_accessor = a;
        }
        if let Some(c) = canonical_id {
            alias.canonical_id = c;
        }
        if alias.name.is_empty() {
            return Err(invalid("missing alias name"));
        }
        if self.mount(&alias.mount_accessor).is_none() {
            return Err(invalid(format!(
                "invalid mount accessor {:?}",
                alias.mount_accessor
            )));
        }
        let target = match alias.canonical_id.as_str() {
            // No group named: the alias gets a new external group of its own, as in Vault.
            "" => {
                let id = new_id();
                Arc::new(Group {
                    name: format!("group_{}", &id[..8]),
                    id,
                    kind: "external".into(),
                    creation_time: now.clone(),
                    last_update_time: now.clone(),
                    ..Default::default()
                })
            }
            c => self
                .group(c)
                .ok_or_else(|| invalid(format!("group with ID {c:?} not found (canonical_id)")))?,
        };
        alias.canonical_id = target.id.clone();
        if target.kind != "external" {
            return Err(invalid("alias can't be set on an internal group"));
        }
        if let Some(other) = self.group_by_alias(&alias.mount_accessor, &alias.name)
            && other.alias.as_ref().is_some_and(|a| a.id != alias.id)
        {
            return Err(invalid(
                "combination of mount and group alias name is already in use",
            ));
        }
        if target.alias.as_ref().is_some_and(|a| a.id != alias.id) {
            return Err(invalid("group already has an alias"));
        }
        alias.last_update_time = now;
        let mut groups = Vec::new();
        if let Some(old) = old_group.filter(|o| o.id != target.id) {
            let mut old = (*old).clone();
            old.alias = None;
            groups.push(old);
        }
        let mut t = (*target).clone();
        t.alias = Some(alias.clone());
        t.modify_index += 1;
        groups.push(t);
        self.commit(Vec::new(), groups).await?;
        Ok(alias)
    }

    pub async fn delete_group_alias(&self, id: &str) -> Result<(), CoreError> {
        let _w = self.writes.lock().await;
        let Some((_, g)) = self.group_alias(id) else {
            return Ok(());
        };
        let mut g = (*g).clone();
        g.alias = None;
        self.commit(Vec::new(), vec![g]).await
    }

    /// Reloads one record after another server changed it (`Core::invalidate`).
    pub async fn invalidate(&self, key: &str) -> Result<(), CoreError> {
        if key.starts_with("mfa/") {
            return self.mfa.reload().await;
        }
        let _w = self.writes.lock().await;
        if let Some(id) = key.strip_prefix("entity/") {
            let e = self.load::<Entity>(key).await?;
            let mut s = self.state.write();
            s.unindex_entity(id);
            if let Some(e) = e {
                s.index_entity(Arc::new(e));
            }
        } else if let Some(id) = key.strip_prefix("group/") {
            let g = self.load::<Group>(key).await?;
            let mut s = self.state.write();
            s.unindex_group(id);
            if let Some(g) = g {
                s.index_group(Arc::new(g));
            }
        }
        self.changed();
        Ok(())
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for x in v {
        if !x.is_empty() && !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn check_name(name: &str, what: &str) -> Result<(), CoreError> {
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "invalid {what} name {name:?}: it must be non-empty, without control characters"
        )));
    }
    Ok(())
}

/// The writable fields of an entity; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct EntityFields {
    pub name: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub policies: Option<Vec<String>>,
    pub disabled: Option<bool>,
}

#[derive(Debug, Default)]
pub struct AliasFields {
    pub name: Option<String>,
    pub mount_accessor: Option<String>,
    pub canonical_id: Option<String>,
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default)]
pub struct GroupFields {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub policies: Option<Vec<String>>,
    pub member_entity_ids: Option<Vec<String>>,
    pub member_group_ids: Option<Vec<String>>,
}
