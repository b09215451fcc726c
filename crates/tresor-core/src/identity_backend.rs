//! The `identity/` built-in: Vault's identity API over the [`IdentityStore`] handle (entities,
//! entity aliases, groups, group aliases, lookups, merge). Built from the store alone, never
//! from the core.

use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Fields, Path, Table, TableBackend};
use tresor_sdk::{LogicalBackend, LogicalError, Operation, Response, Result};

use crate::error::CoreError;
use crate::identity::{
    AliasFields, Entity, EntityAlias, EntityFields, Group, GroupAlias, GroupFields, IdentityStore,
};

pub struct Identity {
    store: Arc<IdentityStore>,
}

impl crate::identity::HasIdentity for Identity {
    fn identity(&self) -> &IdentityStore {
        &self.store
    }
}

pub fn backend(store: Arc<IdentityStore>) -> Arc<dyn LogicalBackend> {
    TableBackend::new(Identity { store }, table())
}

fn logical(e: CoreError) -> LogicalError {
    match e {
        CoreError::InvalidRequest(m) => LogicalError::InvalidRequest(m),
        CoreError::NotFound(m) => LogicalError::NotFound(m),
        CoreError::Conflict(m) => LogicalError::Conflict(m),
        CoreError::PermissionDenied => LogicalError::PermissionDenied,
        other => LogicalError::Internal(other.to_string()),
    }
}

fn obj(v: Value) -> Response {
    Response::json(v)
}

impl Identity {
    fn alias_json(&self, a: &EntityAlias) -> Value {
        let (mount_path, mount_type) = self.store.mount(&a.mount_accessor).unwrap_or_default();
        json!({
            "id": a.id,
            "canonical_id": a.canonical_id,
            "mount_accessor": a.mount_accessor,
            "mount_path": mount_path,
            "mount_type": mount_type,
            "name": a.name,
            "metadata": if a.metadata.is_empty() { Value::Null } else { json!(a.metadata) },
            "custom_metadata": a.custom_metadata,
            "merged_from_canonical_ids": if a.merged_from_canonical_ids.is_empty() { Value::Null } else { json!(a.merged_from_canonical_ids) },
            "creation_time": a.creation_time,
            "last_update_time": a.last_update_time,
            "local": false,
            "namespace_id": "root",
        })
    }

    fn entity_json(&self, e: &Entity) -> Value {
        let (direct, inherited) = self.store.groups_of(&e.id);
        let mut all = direct.clone();
        all.extend(inherited.iter().cloned());
        json!({
            "id": e.id,
            "name": e.name,
            "metadata": if e.metadata.is_empty() { Value::Null } else { json!(e.metadata) },
            "policies": e.policies,
            "disabled": e.disabled,
            "aliases": e.aliases.iter().map(|a| self.alias_json(a)).collect::<Vec<_>>(),
            "direct_group_ids": direct,
            "inherited_group_ids": inherited,
            "group_ids": all,
            "merged_entity_ids": if e.merged_entity_ids.is_empty() { Value::Null } else { json!(e.merged_entity_ids) },
            "creation_time": e.creation_time,
            "last_update_time": e.last_update_time,
            "namespace_id": "root",
        })
    }

    fn group_alias_json(&self, a: &GroupAlias) -> Value {
        let (mount_path, mount_type) = self.store.mount(&a.mount_accessor).unwrap_or_default();
        json!({
            "id": a.id,
            "canonical_id": a.canonical_id,
            "mount_accessor": a.mount_accessor,
            "mount_path": mount_path,
            "mount_type": mount_type,
            "name": a.name,
            "creation_time": a.creation_time,
            "last_update_time": a.last_update_time,
            "merged_from_canonical_ids": Value::Null,
            "metadata": Value::Null,
            "namespace_id": "root",
        })
    }

    fn group_json(&self, g: &Group) -> Value {
        json!({
            "id": g.id,
            "name": g.name,
            "type": g.kind,
            "metadata": if g.metadata.is_empty() { Value::Null } else { json!(g.metadata) },
            "policies": null_if_empty(&g.policies),
            "member_entity_ids": null_if_empty(&g.member_entity_ids),
            "member_group_ids": null_if_empty(&g.member_group_ids),
            "parent_group_ids": null_if_empty(&self.store.parents_of(&g.id)),
            "alias": g.alias.as_ref().map(|a| self.group_alias_json(a)).unwrap_or_else(|| json!({})),
            "modify_index": g.modify_index,
            "creation_time": g.creation_time,
            "last_update_time": g.last_update_time,
            "namespace_id": "root",
        })
    }
}

fn null_if_empty(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

tresor_sdk::input! {
    /// The settings of an entity (`entity`, `entity/id/:id`, `entity/name/:name`); a write
    /// changes only the settings it sends.
    struct EntityInput {
        name: OptStr, "Name of the entity.";
        metadata: OptStrMap, "Metadata of the entity (key=value pairs), usable in templated policies.";
        policies: OptList, "Policies of the entity.";
        disabled: OptBool, "Tokens of a disabled entity are denied every request.";
    }
}

tresor_sdk::input! {
    /// The settings of a group (`group`, `group/id/:id`, `group/name/:name`); a write changes
    /// only the settings it sends.
    struct GroupInput {
        name: OptStr, "Name of the group.";
        kind("type"): OptStr, "internal (members listed here) or external (members follow the group alias).";
        metadata: OptStrMap, "Metadata of the group.";
        policies: OptList, "Policies of the group's members.";
        member_entity_ids: OptList, "Entities that are members of the group (internal groups only).";
        member_group_ids: OptList, "Groups that are members of the group.";
    }
}

tresor_sdk::input! {
    /// The settings of an entity alias or a group alias; a write changes only what it sends.
    struct AliasInput {
        name: OptStr, "Name of the alias (the login's identifier in its auth method).";
        canonical_id: OptStr, "The entity (or group) the alias belongs to.";
        mount_accessor: OptStr, "Accessor of the auth mount the alias belongs to.";
        custom_metadata: OptStrMap, "Metadata set by an operator.";
    }
}

tresor_sdk::input! {
    /// The object named by the path (`entity/id/:id`, `group-alias/id/:id`, ...).
    struct IdInput {
        id: Str, "ID of the object.";
    }
}

tresor_sdk::input! {
    /// `entity`: an ID makes the write an update.
    struct EntityIdInput {
        id: OptStr, "ID of the entity; if set, updates it.";
    }
}

tresor_sdk::input! {
    /// `entity-alias`: an ID makes the write an update.
    struct AliasIdInput {
        id: OptStr, "ID of the alias; if set, updates it.";
    }
}

tresor_sdk::input! {
    /// `group`: an ID makes the write an update.
    struct GroupIdInput {
        id: OptStr, "ID of the group; if set, updates it.";
    }
}

tresor_sdk::input! {
    /// `group-alias`: an ID makes the write an update.
    struct GroupAliasIdInput {
        id: OptStr, "ID of the group alias; if set, updates it.";
    }
}

tresor_sdk::input! {
    /// `entity/batch-delete`.
    struct BatchDeleteInput {
        entity_ids: List, "Entities to delete.", required;
    }
}

tresor_sdk::input! {
    /// `entity/merge`.
    struct MergeInput {
        from_entity_ids: List, "Entities to merge into to_entity_id.", required;
        to_entity_id: Str, "The entity that remains.", required;
        force: Bool, "Merge even if two entities have an alias on the same mount (the target's alias is kept).";
        conflicting_alias_ids_to_keep: List, "On a mount where both entities have an alias, the alias to keep.";
    }
}

tresor_sdk::input! {
    /// `lookup/entity`.
    struct EntityLookupInput {
        name: Str, "Name of the entity.";
        id: Str, "ID of the entity.";
        alias_id: Str, "ID of one of its aliases.";
        alias_name: Str, "Name of one of its aliases (with alias_mount_accessor).";
        alias_mount_accessor: Str, "Accessor of the alias's mount.";
    }
}

tresor_sdk::input! {
    /// `lookup/group`.
    struct GroupLookupInput {
        name: Str, "Name of the group.";
        id: Str, "ID of the group.";
        alias_id: Str, "ID of its alias.";
        alias_name: Str, "Name of its alias (with alias_mount_accessor).";
        alias_mount_accessor: Str, "Accessor of the alias's mount.";
    }
}

/// An ID sent with a create, when not empty.
fn given(id: Option<String>) -> Option<String> {
    id.filter(|s| !s.is_empty())
}

fn entity_fields(f: &Fields) -> EntityFields {
    let i = f.input::<EntityInput>();
    EntityFields {
        name: i.name,
        metadata: i.metadata,
        policies: i.policies,
        disabled: i.disabled,
    }
}

fn group_fields(f: &Fields) -> GroupFields {
    let i = f.input::<GroupInput>();
    GroupFields {
        name: i.name,
        kind: i.kind,
        metadata: i.metadata,
        policies: i.policies,
        member_entity_ids: i.member_entity_ids,
        member_group_ids: i.member_group_ids,
    }
}

type H = tresor_sdk::framework::BoxFuture<Result<Option<Response>>>;

fn write_entity(b: Arc<Identity>, id: Option<String>, name: Option<String>, f: Fields) -> H {
    Box::pin(async move {
        let (e, created) = b
            .store
            .write_entity(id.as_deref(), name.as_deref(), entity_fields(&f))
            .await
            .map_err(logical)?;
        // As in Vault: a create answers the new id and name, an update 204.
        if !created {
            return Ok(None);
        }
        Ok(Some(obj(
            json!({"id": e.id, "name": e.name, "aliases": null}),
        )))
    })
}

fn write_group(b: Arc<Identity>, id: Option<String>, name: Option<String>, f: Fields) -> H {
    Box::pin(async move {
        let (g, created) = b
            .store
            .write_group(id.as_deref(), name.as_deref(), group_fields(&f))
            .await
            .map_err(logical)?;
        // As in Vault: a create answers the new id and name, an update 204.
        if !created {
            return Ok(None);
        }
        Ok(Some(obj(json!({"id": g.id, "name": g.name}))))
    })
}

fn write_alias(b: Arc<Identity>, id: Option<String>, f: Fields) -> H {
    Box::pin(async move {
        let i = f.input::<AliasInput>();
        let fields = AliasFields {
            name: i.name,
            mount_accessor: i.mount_accessor,
            canonical_id: i.canonical_id,
            custom_metadata: i.custom_metadata,
        };
        let a = b
            .store
            .write_alias(id.as_deref(), fields)
            .await
            .map_err(logical)?;
        Ok(Some(obj(
            json!({"id": a.id, "canonical_id": a.canonical_id}),
        )))
    })
}

fn write_group_alias(b: Arc<Identity>, id: Option<String>, f: Fields) -> H {
    Box::pin(async move {
        let i = f.input::<AliasInput>();
        let a = b
            .store
            .write_group_alias(id.as_deref(), i.name, i.mount_accessor, i.canonical_id)
            .await
            .map_err(logical)?;
        Ok(Some(obj(
            json!({"id": a.id, "canonical_id": a.canonical_id}),
        )))
    })
}

fn table() -> Table<Identity> {
    use Operation::{Delete, List, Read, Update};
    Table {
        help: "The identity store: entities and their aliases, groups and group aliases. A login's alias resolves to an entity; the policies of the entity and of its groups apply to every request of its tokens.",
        special: crate::identity_oidc::special_paths(),
        paths: vec![
            Path::<Identity>::new("entity")
                .input::<EntityInput>()
                .input::<EntityIdInput>()
                .op(Update, |b, _req, f| {
                    let id = given(f.input::<EntityIdInput>().id);
                    write_entity(b, id, None, f)
                })
                .help("Create a new entity, or update one by ID.", "Entities tie the aliases of one person or machine in several auth methods together."),
            Path::<Identity>::new("entity/id/")
                .op(List, |b, _req, _f| Box::pin(async move {
                    let es = b.store.entities();
                    if es.is_empty() { return Ok(None); }
                    let mut info = Map::new();
                    for e in &es {
                        let mut v = json!({"name": e.name});
                        if !e.aliases.is_empty() {
                            v["aliases"] = e.aliases.iter().map(|a| {
                                let (mount_path, mount_type) = b.store.mount(&a.mount_accessor).unwrap_or_default();
                                json!({"id": a.id, "mount_accessor": a.mount_accessor, "mount_path": mount_path, "mount_type": mount_type, "name": a.name})
                            }).collect();
                        }
                        info.insert(e.id.clone(), v);
                    }
                    Ok(Some(obj(json!({"keys": es.iter().map(|e| e.id.clone()).collect::<Vec<_>>(), "key_info": info}))))
                }))
                .help("List entities by ID.", ""),
            Path::<Identity>::new("entity/id/{id}")
                .input::<IdInput>()
                .input::<EntityInput>()
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.entity(&f.input::<IdInput>().id).map(|e| obj(b.entity_json(&e))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.input::<IdInput>().id);
                    write_entity(b, id, None, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_entities(&[f.input::<IdInput>().id]).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Read, update or delete an entity by ID.", "Deleting an entity deletes its aliases and takes it out of every group."),
            Path::<Identity>::new("entity/name/")
                .op(List, |b, _req, _f| Box::pin(async move {
                    let mut names: Vec<String> = b.store.entities().iter().map(|e| e.name.clone()).collect();
                    if names.is_empty() { return Ok(None); }
                    names.sort();
                    Ok(Some(Response::list(names)))
                }))
                .help("List entities by name.", ""),
            Path::<Identity>::new("entity/name/{name}")
                .input::<EntityInput>()
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.entity_by_name(&entity_name(&f)).map(|e| obj(b.entity_json(&e))))
                }))
                .op(Update, |b, _req, f| {
                    let name = Some(entity_name(&f));
                    write_entity(b, None, name, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    if let Some(e) = b.store.entity_by_name(&entity_name(&f)) {
                        b.store.delete_entities(std::slice::from_ref(&e.id)).await.map_err(logical)?;
                    }
                    Ok(None)
                }))
                .help("Create, read, update or delete an entity by name.", ""),
            Path::<Identity>::new("entity/batch-delete")
                .input::<BatchDeleteInput>()
                .op(Update, |b, _req, f| Box::pin(async move {
                    b.store.delete_entities(&f.input::<BatchDeleteInput>().entity_ids).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Delete several entities at once.", ""),
            Path::<Identity>::new("entity/merge")
                .input::<MergeInput>()
                .op(Update, |b, _req, f| Box::pin(async move {
                    let m = f.input::<MergeInput>();
                    b.store.merge(&m.from_entity_ids, &m.to_entity_id, m.force, &m.conflicting_alias_ids_to_keep).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Merge entities into one.", "The merged entities' aliases, policies and group memberships move to the target; their tokens resolve to it."),
            Path::<Identity>::new("entity-alias")
                .input::<AliasInput>()
                .input::<AliasIdInput>()
                .op(Update, |b, _req, f| {
                    let id = given(f.input::<AliasIdInput>().id);
                    write_alias(b, id, f)
                })
                .help("Create an entity alias.", ""),
            Path::<Identity>::new("entity-alias/id/")
                .op(List, |b, _req, _f| Box::pin(async move {
                    let mut keys = Vec::new();
                    let mut info = Map::new();
                    for e in b.store.entities() {
                        for a in &e.aliases {
                            keys.push(a.id.clone());
                            let mut v = b.alias_json(a);
                            if let Some(m) = v.as_object_mut() { m.remove("id"); }
                            info.insert(a.id.clone(), v);
                        }
                    }
                    if keys.is_empty() { return Ok(None); }
                    Ok(Some(obj(json!({"keys": keys, "key_info": info}))))
                }))
                .help("List entity aliases by ID.", ""),
            Path::<Identity>::new("entity-alias/id/{id}")
                .input::<IdInput>()
                .input::<AliasInput>()
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.alias(&f.input::<IdInput>().id).map(|(a, _)| obj(b.alias_json(&a))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.input::<IdInput>().id);
                    write_alias(b, id, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_alias(&f.input::<IdInput>().id).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Read, update or delete an entity alias by ID.", ""),
            Path::<Identity>::new("group")
                .input::<GroupInput>()
                .input::<GroupIdInput>()
                .op(Update, |b, _req, f| {
                    let id = given(f.input::<GroupIdInput>().id);
                    write_group(b, id, None, f)
                })
                .help("Create a group, or update one by ID.", "Members of a group get its policies on every request, from the moment they are added."),
            Path::<Identity>::new("group/id/")
                .op(List, |b, _req, _f| Box::pin(async move {
                    let gs = b.store.groups();
                    if gs.is_empty() { return Ok(None); }
                    let mut info = Map::new();
                    for g in &gs {
                        info.insert(g.id.clone(), json!({
                            "name": g.name,
                            "num_member_entities": g.member_entity_ids.len(),
                            "num_parent_groups": b.store.parents_of(&g.id).len(),
                        }));
                    }
                    Ok(Some(obj(json!({"keys": gs.iter().map(|g| g.id.clone()).collect::<Vec<_>>(), "key_info": info}))))
                }))
                .help("List groups by ID.", ""),
            Path::<Identity>::new("group/id/{id}")
                .input::<IdInput>()
                .input::<GroupInput>()
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.group(&f.input::<IdInput>().id).map(|g| obj(b.group_json(&g))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.input::<IdInput>().id);
                    write_group(b, id, None, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_group(&f.input::<IdInput>().id).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Read, update or delete a group by ID.", ""),
            Path::<Identity>::new("group/name/")
                .op(List, |b, _req, _f| Box::pin(async move {
                    let mut names: Vec<String> = b.store.groups().iter().map(|g| g.name.clone()).collect();
                    if names.is_empty() { return Ok(None); }
                    names.sort();
                    Ok(Some(Response::list(names)))
                }))
                .help("List groups by name.", ""),
            Path::<Identity>::new("group/name/{name}")
                .input::<GroupInput>()
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.group_by_name(&group_name(&f)).map(|g| obj(b.group_json(&g))))
                }))
                .op(Update, |b, _req, f| {
                    let name = Some(group_name(&f));
                    write_group(b, None, name, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    if let Some(g) = b.store.group_by_name(&group_name(&f)) {
                        b.store.delete_group(&g.id).await.map_err(logical)?;
                    }
                    Ok(None)
                }))
                .help("Create, read, update or delete a group by name.", ""),
            Path::<Identity>::new("group-alias")
                .input::<AliasInput>()
                .input::<GroupAliasIdInput>()
                .op(Update, |b, _req, f| {
                    let id = given(f.input::<GroupAliasIdInput>().id);
                    write_group_alias(b, id, f)
                })
                .help("Create a group alias: the name of an external group in an auth method (an LDAP group, an OIDC groups claim).", ""),
            Path::<Identity>::new("group-alias/id/")
                .op(List, |b, _req, _f| Box::pin(async move {
                    let mut keys = Vec::new();
                    let mut info = Map::new();
                    for g in b.store.groups() {
                        if let Some(a) = &g.alias {
                            keys.push(a.id.clone());
                            info.insert(a.id.clone(), b.group_alias_json(a));
                        }
                    }
                    if keys.is_empty() { return Ok(None); }
                    Ok(Some(obj(json!({"keys": keys, "key_info": info}))))
                }))
                .help("List group aliases by ID.", ""),
            Path::<Identity>::new("group-alias/id/{id}")
                .input::<IdInput>()
                .input::<AliasInput>()
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.group_alias(&f.input::<IdInput>().id).map(|(a, _)| obj(b.group_alias_json(&a))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.input::<IdInput>().id);
                    write_group_alias(b, id, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_group_alias(&f.input::<IdInput>().id).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Read, update or delete a group alias by ID.", ""),
            Path::<Identity>::new("lookup/entity")
                .input::<EntityLookupInput>()
                .op(Update, |b, _req, f| Box::pin(async move {
                    let i = f.input::<EntityLookupInput>();
                    let ways = Ways { name: &i.name, id: &i.id, alias_id: &i.alias_id, alias_name: &i.alias_name, alias_mount_accessor: &i.alias_mount_accessor };
                    let e = lookup(ways, |n| b.store.entity_by_name(n), |i| b.store.entity(i),
                        |i| b.store.alias(i).map(|(_, e)| e),
                        |m, n| b.store.alias_by_name(m, n).map(|(_, e)| e))?;
                    Ok(e.map(|e| obj(b.entity_json(&e))))
                }))
                .help("Look up an entity by name, ID, alias ID, or alias name and mount accessor.", "Exactly one way of naming it may be given. Nothing found is an empty 204."),
            Path::<Identity>::new("lookup/group")
                .input::<GroupLookupInput>()
                .op(Update, |b, _req, f| Box::pin(async move {
                    let i = f.input::<GroupLookupInput>();
                    let ways = Ways { name: &i.name, id: &i.id, alias_id: &i.alias_id, alias_name: &i.alias_name, alias_mount_accessor: &i.alias_mount_accessor };
                    let g = lookup(ways, |n| b.store.group_by_name(n), |i| b.store.group(i),
                        |i| b.store.group_alias(i).map(|(_, g)| g),
                        |m, n| b.store.group_by_alias(m, n))?;
                    Ok(g.map(|g| obj(b.group_json(&g))))
                }))
                .help("Look up a group by name, ID, alias ID, or alias name and mount accessor.", "Exactly one way of naming it may be given. Nothing found is an empty 204."),
        ].into_iter().chain(crate::identity_oidc::paths()).chain(crate::identity_provider::paths()).chain(crate::identity_mfa::paths()).collect(),
    }
}

/// The ways a lookup request may name an entity or a group (empty: not given).
struct Ways<'a> {
    name: &'a str,
    id: &'a str,
    alias_id: &'a str,
    alias_name: &'a str,
    alias_mount_accessor: &'a str,
}

/// The one way of naming something a lookup request used.
fn lookup<T>(
    w: Ways<'_>,
    by_name: impl Fn(&str) -> Option<T>,
    by_id: impl Fn(&str) -> Option<T>,
    by_alias_id: impl Fn(&str) -> Option<T>,
    by_alias: impl Fn(&str, &str) -> Option<T>,
) -> Result<Option<T>> {
    let given = |s: &'_ str| !s.is_empty();
    let ways = [w.name, w.id, w.alias_id, w.alias_name]
        .into_iter()
        .filter(|s| given(s))
        .count();
    if ways == 0 {
        return Err(LogicalError::invalid("query parameter not supplied"));
    }
    if ways > 1 {
        return Err(LogicalError::invalid(
            "only one of name, id, alias_id or alias_name (with alias_mount_accessor) may be given",
        ));
    }
    if given(w.name) {
        return Ok(by_name(w.name));
    }
    if given(w.id) {
        return Ok(by_id(w.id));
    }
    if given(w.alias_id) {
        return Ok(by_alias_id(w.alias_id));
    }
    if !given(w.alias_mount_accessor) {
        return Err(LogicalError::invalid(
            "alias_mount_accessor is required with alias_name",
        ));
    }
    Ok(by_alias(w.alias_mount_accessor, w.alias_name))
}

/// The entity name in the path (`entity/name/:name`).
fn entity_name(f: &Fields) -> String {
    f.input::<EntityInput>().name.unwrap_or_default()
}

/// The group name in the path (`group/name/:name`).
fn group_name(f: &Fields) -> String {
    f.input::<GroupInput>().name.unwrap_or_default()
}
