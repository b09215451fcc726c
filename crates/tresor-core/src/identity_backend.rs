//! The `identity/` built-in: Vault's identity API over the [`IdentityStore`] handle (entities,
//! entity aliases, groups, group aliases, lookups, merge). Built from the store alone, never
//! from the core.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tresor_sdk::framework::{Field, Fields, Kind, Path, Table, TableBackend};
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

fn opt_list(f: &Fields, name: &str) -> Option<Vec<String>> {
    f.is_set(name).then(|| f.list(name))
}

fn opt_map(f: &Fields, name: &str) -> Option<BTreeMap<String, String>> {
    f.is_set(name).then(|| f.str_map(name))
}

fn opt_str(f: &Fields, name: &str) -> Option<String> {
    f.is_set(name).then(|| f.string(name))
}

fn entity_fields(f: &Fields) -> EntityFields {
    EntityFields {
        name: opt_str(f, "name"),
        metadata: opt_map(f, "metadata"),
        policies: opt_list(f, "policies"),
        disabled: f.is_set("disabled").then(|| f.flag("disabled")),
    }
}

fn group_fields(f: &Fields) -> GroupFields {
    GroupFields {
        name: opt_str(f, "name"),
        kind: opt_str(f, "type"),
        metadata: opt_map(f, "metadata"),
        policies: opt_list(f, "policies"),
        member_entity_ids: opt_list(f, "member_entity_ids"),
        member_group_ids: opt_list(f, "member_group_ids"),
    }
}

fn entity_field_defs(p: Path<Identity>) -> Path<Identity> {
    p.field(Field::new("name", Kind::Str, "Name of the entity."))
        .field(Field::new(
            "metadata",
            Kind::StrMap,
            "Metadata of the entity (key=value pairs), usable in templated policies.",
        ))
        .field(Field::new(
            "policies",
            Kind::List,
            "Policies of the entity.",
        ))
        .field(Field::new(
            "disabled",
            Kind::Bool,
            "Tokens of a disabled entity are denied every request.",
        ))
}

fn group_field_defs(p: Path<Identity>) -> Path<Identity> {
    p.field(Field::new("name", Kind::Str, "Name of the group."))
        .field(Field::new(
            "type",
            Kind::Str,
            "internal (members listed here) or external (members follow the group alias).",
        ))
        .field(Field::new(
            "metadata",
            Kind::StrMap,
            "Metadata of the group.",
        ))
        .field(Field::new(
            "policies",
            Kind::List,
            "Policies of the group's members.",
        ))
        .field(Field::new(
            "member_entity_ids",
            Kind::List,
            "Entities that are members of the group (internal groups only).",
        ))
        .field(Field::new(
            "member_group_ids",
            Kind::List,
            "Groups that are members of the group.",
        ))
}

fn alias_field_defs(p: Path<Identity>) -> Path<Identity> {
    p.field(Field::new(
        "name",
        Kind::Str,
        "Name of the alias (the login's identifier in its auth method).",
    ))
    .field(Field::new(
        "canonical_id",
        Kind::Str,
        "The entity (or group) the alias belongs to.",
    ))
    .field(Field::new(
        "mount_accessor",
        Kind::Str,
        "Accessor of the auth mount the alias belongs to.",
    ))
    .field(Field::new(
        "custom_metadata",
        Kind::StrMap,
        "Metadata set by an operator.",
    ))
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
        if id.is_none() && f.is_set("id") && !f.string("id").is_empty() {
            return write_alias(b, Some(f.string("id")), f).await;
        }
        let fields = AliasFields {
            name: opt_str(&f, "name"),
            mount_accessor: opt_str(&f, "mount_accessor"),
            canonical_id: opt_str(&f, "canonical_id"),
            custom_metadata: opt_map(&f, "custom_metadata"),
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
        let id = id.or_else(|| opt_str(&f, "id").filter(|s| !s.is_empty()));
        let a = b
            .store
            .write_group_alias(
                id.as_deref(),
                opt_str(&f, "name"),
                opt_str(&f, "mount_accessor"),
                opt_str(&f, "canonical_id"),
            )
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
            entity_field_defs(Path::new("entity"))
                .field(Field::new("id", Kind::Str, "ID of the entity; if set, updates it."))
                .op(Update, |b, _req, f| {
                    let id = opt_str(&f, "id").filter(|s| !s.is_empty());
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
            entity_field_defs(Path::new("entity/id/{id}"))
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.entity(f.str("id").unwrap_or_default()).map(|e| obj(b.entity_json(&e))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.string("id"));
                    write_entity(b, id, None, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_entities(&[f.string("id")]).await.map_err(logical)?;
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
            entity_field_defs(Path::new("entity/name/{name}"))
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.entity_by_name(f.str("name").unwrap_or_default()).map(|e| obj(b.entity_json(&e))))
                }))
                .op(Update, |b, _req, f| {
                    let name = Some(f.string("name"));
                    write_entity(b, None, name, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    if let Some(e) = b.store.entity_by_name(f.str("name").unwrap_or_default()) {
                        b.store.delete_entities(std::slice::from_ref(&e.id)).await.map_err(logical)?;
                    }
                    Ok(None)
                }))
                .help("Create, read, update or delete an entity by name.", ""),
            Path::<Identity>::new("entity/batch-delete")
                .field(Field::new("entity_ids", Kind::List, "Entities to delete.").required())
                .op(Update, |b, _req, f| Box::pin(async move {
                    b.store.delete_entities(&f.list("entity_ids")).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Delete several entities at once.", ""),
            Path::<Identity>::new("entity/merge")
                .field(Field::new("from_entity_ids", Kind::List, "Entities to merge into to_entity_id.").required())
                .field(Field::new("to_entity_id", Kind::Str, "The entity that remains.").required())
                .field(Field::new("force", Kind::Bool, "Merge even if two entities have an alias on the same mount (the target's alias is kept)."))
                .field(Field::new("conflicting_alias_ids_to_keep", Kind::List, "On a mount where both entities have an alias, the alias to keep."))
                .op(Update, |b, _req, f| Box::pin(async move {
                    b.store.merge(&f.list("from_entity_ids"), &f.string("to_entity_id"), f.flag("force"), &f.list("conflicting_alias_ids_to_keep")).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Merge entities into one.", "The merged entities' aliases, policies and group memberships move to the target; their tokens resolve to it."),
            alias_field_defs(Path::new("entity-alias"))
                .field(Field::new("id", Kind::Str, "ID of the alias; if set, updates it."))
                .op(Update, |b, _req, f| write_alias(b, None, f))
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
            alias_field_defs(Path::new("entity-alias/id/{id}"))
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.alias(f.str("id").unwrap_or_default()).map(|(a, _)| obj(b.alias_json(&a))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.string("id"));
                    write_alias(b, id, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_alias(f.str("id").unwrap_or_default()).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Read, update or delete an entity alias by ID.", ""),
            group_field_defs(Path::new("group"))
                .field(Field::new("id", Kind::Str, "ID of the group; if set, updates it."))
                .op(Update, |b, _req, f| {
                    let id = opt_str(&f, "id").filter(|s| !s.is_empty());
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
            group_field_defs(Path::new("group/id/{id}"))
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.group(f.str("id").unwrap_or_default()).map(|g| obj(b.group_json(&g))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.string("id"));
                    write_group(b, id, None, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_group(f.str("id").unwrap_or_default()).await.map_err(logical)?;
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
            group_field_defs(Path::new("group/name/{name}"))
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.group_by_name(f.str("name").unwrap_or_default()).map(|g| obj(b.group_json(&g))))
                }))
                .op(Update, |b, _req, f| {
                    let name = Some(f.string("name"));
                    write_group(b, None, name, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    if let Some(g) = b.store.group_by_name(f.str("name").unwrap_or_default()) {
                        b.store.delete_group(&g.id).await.map_err(logical)?;
                    }
                    Ok(None)
                }))
                .help("Create, read, update or delete a group by name.", ""),
            alias_field_defs(Path::new("group-alias"))
                .field(Field::new("id", Kind::Str, "ID of the group alias; if set, updates it."))
                .op(Update, |b, _req, f| write_group_alias(b, None, f))
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
            alias_field_defs(Path::new("group-alias/id/{id}"))
                .op(Read, |b, _req, f| Box::pin(async move {
                    Ok(b.store.group_alias(f.str("id").unwrap_or_default()).map(|(a, _)| obj(b.group_alias_json(&a))))
                }))
                .op(Update, |b, _req, f| {
                    let id = Some(f.string("id"));
                    write_group_alias(b, id, f)
                })
                .op(Delete, |b, _req, f| Box::pin(async move {
                    b.store.delete_group_alias(f.str("id").unwrap_or_default()).await.map_err(logical)?;
                    Ok(None)
                }))
                .help("Read, update or delete a group alias by ID.", ""),
            Path::<Identity>::new("lookup/entity")
                .field(Field::new("name", Kind::Str, "Name of the entity."))
                .field(Field::new("id", Kind::Str, "ID of the entity."))
                .field(Field::new("alias_id", Kind::Str, "ID of one of its aliases."))
                .field(Field::new("alias_name", Kind::Str, "Name of one of its aliases (with alias_mount_accessor)."))
                .field(Field::new("alias_mount_accessor", Kind::Str, "Accessor of the alias's mount."))
                .op(Update, |b, _req, f| Box::pin(async move {
                    let e = lookup(&f, |n| b.store.entity_by_name(n), |i| b.store.entity(i),
                        |i| b.store.alias(i).map(|(_, e)| e),
                        |m, n| b.store.alias_by_name(m, n).map(|(_, e)| e))?;
                    Ok(e.map(|e| obj(b.entity_json(&e))))
                }))
                .help("Look up an entity by name, ID, alias ID, or alias name and mount accessor.", "Exactly one way of naming it may be given. Nothing found is an empty 204."),
            Path::<Identity>::new("lookup/group")
                .field(Field::new("name", Kind::Str, "Name of the group."))
                .field(Field::new("id", Kind::Str, "ID of the group."))
                .field(Field::new("alias_id", Kind::Str, "ID of its alias."))
                .field(Field::new("alias_name", Kind::Str, "Name of its alias (with alias_mount_accessor)."))
                .field(Field::new("alias_mount_accessor", Kind::Str, "Accessor of the alias's mount."))
                .op(Update, |b, _req, f| Box::pin(async move {
                    let g = lookup(&f, |n| b.store.group_by_name(n), |i| b.store.group(i),
                        |i| b.store.group_alias(i).map(|(_, g)| g),
                        |m, n| b.store.group_by_alias(m, n))?;
                    Ok(g.map(|g| obj(b.group_json(&g))))
                }))
                .help("Look up a group by name, ID, alias ID, or alias name and mount accessor.", "Exactly one way of naming it may be given. Nothing found is an empty 204."),
        ].into_iter().chain(crate::identity_oidc::paths()).chain(crate::identity_mfa::paths()).collect(),
    }
}

/// The one way of naming something a lookup request used.
fn lookup<T>(
    f: &Fields,
    by_name: impl Fn(&str) -> Option<T>,
    by_id: impl Fn(&str) -> Option<T>,
    by_alias_id: impl Fn(&str) -> Option<T>,
    by_alias: impl Fn(&str, &str) -> Option<T>,
) -> Result<Option<T>> {
    let given = |k: &str| f.str(k).filter(|s| !s.is_empty());
    let ways = ["name", "id", "alias_id", "alias_name"]
        .iter()
        .filter(|k| given(k).is_some())
        .count();
    if ways == 0 {
        return Err(LogicalError::invalid("query parameter not supplied"));
    }
    if ways > 1 {
        return Err(LogicalError::invalid(
            "only one of name, id, alias_id or alias_name (with alias_mount_accessor) may be given",
        ));
    }
    if let Some(n) = given("name") {
        return Ok(by_name(n));
    }
    if let Some(i) = given("id") {
        return Ok(by_id(i));
    }
    if let Some(i) = given("alias_id") {
        return Ok(by_alias_id(i));
    }
    let name = given("alias_name").unwrap_or_default();
    let mount = given("alias_mount_accessor")
        .ok_or_else(|| LogicalError::invalid("alias_mount_accessor is required with alias_name"))?;
    Ok(by_alias(mount, name))
}
