"""hvac's identity calls against a running Tresor (driven by tests/identity_hvac.rs).

Environment: VAULT_ADDR, VAULT_TOKEN. Every call goes through hvac's public API as a user's
script would; each answer is checked against what an earlier call wrote. Prints "OK <step>"
lines and exits non-zero on the first failure.
"""

import os

import hvac

client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"], timeout=20)
ident = client.secrets.identity


def step(name):
    print("OK", name, flush=True)


client.sys.enable_auth_method("userpass", path="people")
accessor = client.sys.list_auth_methods()["data"]["people/"]["accessor"]

created = ident.create_or_update_entity(name="alice", metadata={"team": "red"}, policies=["p1"])
eid = created["data"]["id"]
assert created["data"]["name"] == "alice", created
read = ident.read_entity(entity_id=eid)["data"]
assert read["metadata"] == {"team": "red"} and read["policies"] == ["p1"], read
step("create_or_update_entity/read_entity")

ident.update_entity(entity_id=eid, policies=["p2"], metadata={"team": "blue"})
read = ident.read_entity(entity_id=eid)["data"]
assert read["policies"] == ["p2"] and read["metadata"] == {"team": "blue"}, read
step("update_entity")

ident.create_or_update_entity_by_name(name="bob", policies=["p3"])
bob = ident.read_entity_by_name(name="bob")["data"]
assert bob["policies"] == ["p3"], bob
names = ident.list_entities_by_name()["data"]["keys"]
assert sorted(names) == ["alice", "bob"], names
ids = ident.list_entities()["data"]
assert set(ids["keys"]) == {eid, bob["id"]} and ids["key_info"][eid]["name"] == "alice", ids
step("entity by name/list_entities")

alias = ident.create_or_update_entity_alias(name="alice", canonical_id=eid, mount_accessor=accessor)
aid = alias["data"]["id"]
assert alias["data"]["canonical_id"] == eid, alias
ra = ident.read_entity_alias(alias_id=aid)["data"]
assert ra["mount_accessor"] == accessor and ra["mount_path"] == "auth/people/" and ra["mount_type"] == "userpass", ra
ident.update_entity_alias(alias_id=aid, name="alice2", canonical_id=eid, mount_accessor=accessor)
assert ident.read_entity_alias(alias_id=aid)["data"]["name"] == "alice2"
assert aid in ident.list_entity_aliases()["data"]["keys"]
step("entity aliases")

found = ident.lookup_entity(alias_name="alice2", alias_mount_accessor=accessor)
assert found["data"]["id"] == eid, found
assert ident.lookup_entity(name="bob")["data"]["id"] == bob["id"]
missing = ident.lookup_entity(name="nobody")
assert missing is None or getattr(missing, "status_code", 204) == 204, missing
step("lookup_entity")

group = ident.create_or_update_group(name="team", policies=["gp"], member_entity_ids=[eid])
gid = group["data"]["id"]
rg = ident.read_group(group_id=gid)["data"]
assert rg["member_entity_ids"] == [eid] and rg["policies"] == ["gp"] and rg["type"] == "internal", rg
parent = ident.create_or_update_group_by_name(name="parent", member_group_ids=[gid])
pid = ident.read_group_by_name(name="parent")["data"]["id"]
assert ident.read_group(group_id=gid)["data"]["parent_group_ids"] == [pid]
e = ident.read_entity(entity_id=eid)["data"]
assert e["direct_group_ids"] == [gid] and e["inherited_group_ids"] == [pid], e
assert sorted(ident.list_groups_by_name()["data"]["keys"]) == ["parent", "team"]
assert set(ident.list_groups()["data"]["keys"]) == {gid, pid}
ident.update_group(group_id=gid, name="team", policies=["gp2"], member_entity_ids=[eid])
assert ident.read_group(group_id=gid)["data"]["policies"] == ["gp2"]
assert ident.lookup_group(name="team")["data"]["id"] == gid
step("groups")

ext = ident.create_or_update_group(name="ext", group_type="external", policies=["ep"])
xid = ext["data"]["id"]
ga = ident.create_or_update_group_alias(name="ldap-ops", mount_accessor=accessor, canonical_id=xid)
gaid = ga["data"]["id"]
assert ident.read_group_alias(alias_id=gaid)["data"]["name"] == "ldap-ops"
assert ident.read_group(group_id=xid)["data"]["alias"]["id"] == gaid
assert gaid in ident.list_group_aliases()["data"]["keys"]
assert ident.lookup_group(alias_name="ldap-ops", alias_mount_accessor=accessor)["data"]["id"] == xid
ident.delete_group_alias(entity_id=gaid)  # hvac names the alias id "entity_id"
assert ident.read_group(group_id=xid)["data"]["alias"] == {}
step("external groups and group aliases")

# hvac's suite creates aliases with no canonical_id: Vault gives each a new entity (or a new
# external group) of its own, named entity_<id prefix> / group_<id prefix>.
lone = ident.create_or_update_entity_alias(name="lone", canonical_id=None, mount_accessor=accessor)["data"]
lone_entity = ident.read_entity(entity_id=lone["canonical_id"])["data"]
assert lone_entity["name"] == "entity_" + lone["canonical_id"][:8], lone_entity
assert [a["id"] for a in lone_entity["aliases"]] == [lone["id"]], lone_entity
lga = ident.create_or_update_group_alias(name="lone-group", mount_accessor=accessor)["data"]
lone_group = ident.read_group(group_id=lga["canonical_id"])["data"]
assert lone_group["type"] == "external" and lone_group["alias"]["id"] == lga["id"], lone_group
assert lone_group["name"] == "group_" + lga["canonical_id"][:8], lone_group
again = ident.create_or_update_group_alias(name="lone-group", alias_id=lga["id"], mount_accessor=accessor)
assert again is None or getattr(again, "status_code", 204) == 204 or again["data"]["id"] == lga["id"], again
assert ident.read_group_alias(alias_id=lga["id"])["data"]["canonical_id"] == lone_group["id"]
ident.delete_entity(entity_id=lone_entity["id"])
ident.delete_group(group_id=lone_group["id"])
step("aliases without canonical_id get an entity or group of their own")

# identity/oidc/config: an explicit issuer is answered with a warning, restoring the default
# ("") with 204 and no body, as Vault does.
explicit = ident.configure_tokens_backend(issuer="https://python-hvac.org:1234")
assert len(explicit["warnings"]) >= 1, explicit
assert ident.read_tokens_backend_configuration()["data"]["issuer"] == "https://python-hvac.org:1234"
restored = ident.configure_tokens_backend(issuer="")
assert getattr(restored, "status_code", None) == 204, restored
assert ident.read_tokens_backend_configuration()["data"]["issuer"] == ""
step("configure_tokens_backend")

ident.merge_entities(from_entity_ids=[bob["id"]], to_entity_id=eid)
merged = ident.read_entity(entity_id=eid)["data"]
assert bob["id"] in merged["merged_entity_ids"] and "p3" in merged["policies"], merged
step("merge_entities")

try:
    ident.create_or_update_entity_alias(name="x", canonical_id="no-such", mount_accessor=accessor)
    raise SystemExit("an alias of a missing entity was accepted")
except hvac.exceptions.InvalidRequest:
    pass
try:
    ident.create_or_update_group_alias(name="y", canonical_id="no-such", mount_accessor=accessor)
    raise SystemExit("a group alias of a missing group was accepted")
except hvac.exceptions.InvalidRequest as e:
    assert "no-such" in str(e), e
step("bad input is a 400")

ident.delete_group(group_id=pid)
ident.delete_group_by_name(name="team")
ident.delete_entity_alias(alias_id=aid)
ident.delete_entity(entity_id=eid)
ident.delete_entity_by_name(name="nobody")
try:
    ident.read_entity(entity_id=eid)
    raise SystemExit("deleted entity still readable")
except hvac.exceptions.InvalidPath:
    pass
step("deletes")
print("ALL OK")
