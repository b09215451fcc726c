"""hvac's KV version 2 calls and hvac.Client's own top-level calls against a running Tresor
(driven by tests/kv_hvac.rs).

Environment: VAULT_ADDR and VAULT_TOKEN (read by hvac itself for the first client).
Every call goes through hvac's public API as a user's script would. Each answer is checked
against Vault's documented behaviour: the HTTP status (200 with a body, 204 without), the
envelope, field names and types (created_time RFC 3339 with nanoseconds, deletion_time ""
or a time, versions keyed by strings, custom_metadata null or an object), the 404 body of a
deleted or destroyed version, and the 400 texts of check-and-set failures.
Prints "OK <step>" lines and exits non-zero on the first failure.
"""

import datetime
import os
import re
import warnings

import hvac
from hvac import exceptions

ADDR = os.environ["VAULT_ADDR"]
ROOT = os.environ["VAULT_TOKEN"]
MOUNT = "kvv2"

# The token and address come from the environment, as hvac documents.
client = hvac.Client(timeout=30)
assert client.url == ADDR, (client.url, ADDR)
assert client.token == ROOT, client.token

# Every HTTP answer hvac receives, so statuses can be checked beside hvac's parsed result.
last = {}


def record(r, *args, **kwargs):
    last["status"] = r.status_code
    last["ctype"] = r.headers.get("Content-Type", "")
    last["body"] = r.content


client.session.hooks["response"].append(record)
kv = client.secrets.kv.v2


def step(name):
    print("OK", name, flush=True)


def status(want):
    assert last["status"] == want, f"status {last['status']}, want {want}: {last['body']!r}"
    if want == 204:
        assert last["body"] == b"", last["body"]


def no_content(r):
    """A call Vault answers with 204 and no body: hvac hands back the requests.Response."""
    assert r.status_code == 204 and r.content == b"", (r.status_code, r.content)


def expect(cls, fn, *args, contains=None, **kwargs):
    try:
        r = fn(*args, **kwargs)
    except cls as e:
        if contains is not None:
            assert contains in str(e), f"{contains!r} not in {str(e)!r}"
        return e
    raise AssertionError(f"{fn.__name__} did not raise {cls.__name__}: {r!r}")


NANO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


def rfc3339(s, what):
    assert isinstance(s, str) and NANO_TIME.match(s), f"{what}: {s!r} is not RFC 3339 (UTC)"
    frac = re.search(r"\.(\d+)Z$", s)
    base = datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - base).total_seconds()) < 600, f"{what}: {s} is not now"
    return frac.group(1) if frac else ""


def parse_time(s):
    """An RFC 3339 UTC time with 0 to 9 fractional digits, to the microsecond."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$", s)
    assert m, s
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return base + datetime.timedelta(microseconds=int((m.group(2) or "0").ljust(6, "0")[:6]))


def envelope(r, what, lease_duration=0):
    """Vault's response envelope around `data`."""
    for k in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"):
        assert k in r, f"{what}: envelope lacks {k!r}: {r!r}"
    assert r["lease_id"] == "" and r["lease_duration"] == lease_duration and r["renewable"] is False, r
    assert r["auth"] is None and r["wrap_info"] is None, r


def version_meta(m, version, deleted=False, destroyed=False, custom=None):
    """The metadata of one version, as a write, a read and a 404 read carry it."""
    assert set(m) == {"created_time", "custom_metadata", "deletion_time", "destroyed", "version"}, m
    rfc3339(m["created_time"], "created_time")
    assert type(m["version"]) is int and m["version"] == version, m
    assert m["destroyed"] is destroyed, m
    if deleted:
        rfc3339(m["deletion_time"], "deletion_time")
    else:
        assert m["deletion_time"] == "", m
    assert m["custom_metadata"] == custom, m


# ------------------------------------------------------------------------------------------
# Mount and engine configuration.

assert client.is_authenticated()
client.sys.enable_secrets_engine(backend_type="kv", path=MOUNT, options={"version": "2"})
mounts = client.sys.list_mounted_secrets_engines()["data"]
assert mounts[MOUNT + "/"]["options"] == {"version": "2"}, mounts[MOUNT + "/"]
step("mount")

conf = kv.read_configuration(mount_point=MOUNT)
status(200)
envelope(conf, "read_configuration")
assert conf["data"]["max_versions"] == 0 and conf["data"]["cas_required"] is False, conf
assert conf["data"]["delete_version_after"] == "0s", conf
for max_versions, cas_required, after in [(10, None, "0s"), (1, None, "0s"), (17, True, "0s"), (10, None, "30m0s")]:
    no_content(kv.configure(max_versions=max_versions, cas_required=cas_required, delete_version_after=after, mount_point=MOUNT))
    d = kv.read_configuration(mount_point=MOUNT)["data"]
    assert type(d["max_versions"]) is int and d["max_versions"] == max_versions, d
    # cas_required left out of a write keeps what the mount had.
    assert d["cas_required"] is (cas_required if cas_required is not None else max_versions == 10 and after == "30m0s"), d
    assert d["delete_version_after"] == after, d
no_content(kv.configure(max_versions=10, cas_required=False, delete_version_after="0s", mount_point=MOUNT))
assert kv.read_configuration(mount_point=MOUNT)["data"]["cas_required"] is False
step("configure/read_configuration")

# ------------------------------------------------------------------------------------------
# Writes, check-and-set, reads.

w = kv.create_or_update_secret(path="hvac", secret={"pssst": "hi"}, cas=0, mount_point=MOUNT)
status(200)
envelope(w, "create_or_update_secret")
version_meta(w["data"], 1)
w = kv.create_or_update_secret(path="hvac", secret={"pssst": "hi", "n": 2}, mount_point=MOUNT)
version_meta(w["data"], 2)
for bad in (0, 1, 5, -1):
    e = expect(
        exceptions.InvalidRequest,
        kv.create_or_update_secret,
        path="hvac",
        secret={"pssst": "no"},
        cas=bad,
        mount_point=MOUNT,
    )
    assert e.errors == ["check-and-set parameter did not match the current version"], e.errors
    status(400)
w = kv.create_or_update_secret(path="hvac", secret={"pssst": "three"}, cas=2, mount_point=MOUNT)
version_meta(w["data"], 3)
step("create_or_update_secret with cas")

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r = kv.read_secret_version(path="hvac", mount_point=MOUNT)
assert any(issubclass(x.category, DeprecationWarning) for x in caught), caught
status(200)
envelope(r, "read_secret_version")
assert set(r["data"]) == {"data", "metadata"}, r["data"]
assert r["data"]["data"] == {"pssst": "three"}, r
version_meta(r["data"]["metadata"], 3)
r = kv.read_secret_version(path="hvac", version=2, mount_point=MOUNT, raise_on_deleted_version=True)
assert r["data"]["data"] == {"pssst": "hi", "n": 2}, r
version_meta(r["data"]["metadata"], 2)
r = kv.read_secret(path="hvac", mount_point=MOUNT, raise_on_deleted_version=False)
assert r["data"]["data"] == {"pssst": "three"} and r["data"]["metadata"]["version"] == 3, r
e = expect(exceptions.InvalidPath, kv.read_secret_version, path="hvac", version=9, mount_point=MOUNT, raise_on_deleted_version=False)
status(404)
e = expect(exceptions.InvalidPath, kv.read_secret_version, path="no-secret-here", mount_point=MOUNT, raise_on_deleted_version=True)
status(404)
# Vault's 404 for an absent secret carries no body beyond an empty error list.
assert e.errors in (None, []), e.errors
step("read_secret_version/read_secret")

# The secret's values keep their JSON types; nested objects come back whole.
typed = {"s": "x", "i": 7, "f": 1.5, "b": True, "n": None, "l": [1, "2"], "o": {"k": {"deep": "v"}}}
kv.create_or_update_secret(path="typed", secret=typed, mount_point=MOUNT)
assert kv.read_secret(path="typed", mount_point=MOUNT, raise_on_deleted_version=True)["data"]["data"] == typed
step("typed values")

# cas_required on the mount: a write without cas is refused, with Vault's text.
kv.configure(max_versions=10, cas_required=True, mount_point=MOUNT)
e = expect(exceptions.InvalidRequest, kv.create_or_update_secret, path="hvac", secret={"x": "1"}, mount_point=MOUNT)
assert e.errors == ["check-and-set parameter required for this call"], e.errors
status(400)
e = expect(exceptions.InvalidRequest, kv.create_or_update_secret, path="hvac", secret={"x": "1"}, cas=1, mount_point=MOUNT)
assert e.errors == ["check-and-set parameter did not match the current version"], e.errors
version_meta(kv.create_or_update_secret(path="hvac", secret={"pssst": "four"}, cas=3, mount_point=MOUNT)["data"], 4)
version_meta(kv.create_or_update_secret(path="fresh", secret={"a": "1"}, cas=0, mount_point=MOUNT)["data"], 1)
kv.configure(max_versions=10, cas_required=False, mount_point=MOUNT)
version_meta(kv.create_or_update_secret(path="hvac", secret={"pssst": "five"}, mount_point=MOUNT)["data"], 5)
step("cas_required on the mount")

# cas_required on one secret (update_metadata) leaves the others alone.
no_content(kv.update_metadata(path="hvac", cas_required=True, mount_point=MOUNT))
assert kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]["cas_required"] is True
e = expect(exceptions.InvalidRequest, kv.create_or_update_secret, path="hvac", secret={"x": "1"}, mount_point=MOUNT)
assert e.errors == ["check-and-set parameter required for this call"], e.errors
version_meta(kv.create_or_update_secret(path="hvac", secret={"pssst": "six"}, cas=5, mount_point=MOUNT)["data"], 6)
version_meta(kv.create_or_update_secret(path="fresh", secret={"a": "2"}, mount_point=MOUNT)["data"], 2)
no_content(kv.update_metadata(path="hvac", cas_required=False, mount_point=MOUNT))
version_meta(kv.create_or_update_secret(path="hvac", secret={"pssst": "seven"}, mount_point=MOUNT)["data"], 7)
step("cas_required on the secret")

# hvac's patch: a read, then a write with cas = the version read.
p = kv.patch(path="hvac", secret={"new_key": "some secret"}, mount_point=MOUNT)
status(200)
version_meta(p["data"], 8)
r = kv.read_secret_version(path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)["data"]
assert r["data"] == {"pssst": "seven", "new_key": "some secret"}, r
p = kv.patch(path="hvac", secret={"pssst": "patched"}, mount_point=MOUNT)
version_meta(p["data"], 9)
assert kv.read_secret(path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)["data"]["data"] == {
    "pssst": "patched",
    "new_key": "some secret",
}
expect(exceptions.InvalidPath, kv.patch, path="nobody-here", secret={"a": "b"}, mount_point=MOUNT, contains="patch only works on existing data.")
step("patch")

# ------------------------------------------------------------------------------------------
# Deleting, undeleting, destroying.

# The latest version (9) soft-deleted: 204, then reads answer 404 with the version's metadata.
no_content(kv.delete_latest_version_of_secret(path="hvac", mount_point=MOUNT))
e = expect(exceptions.InvalidPath, kv.read_secret_version, path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)
status(404)
body = e.json
envelope(body, "404 of a deleted version")
assert body["data"]["data"] is None, body
version_meta(body["data"]["metadata"], 9, deleted=True)
r = kv.read_secret_version(path="hvac", mount_point=MOUNT, raise_on_deleted_version=False)
assert r["data"]["data"] is None and r["data"]["metadata"]["version"] == 9, r
version_meta(r["data"]["metadata"], 9, deleted=True)
r = kv.read_secret(path="hvac", mount_point=MOUNT, raise_on_deleted_version=False)
assert r["data"]["metadata"]["deletion_time"] != "", r
m = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]
rfc3339(m["versions"]["9"]["deletion_time"], "versions.9.deletion_time")
assert all(m["versions"][str(n)]["deletion_time"] == "" for n in range(1, 9)), m["versions"]
step("delete_latest_version_of_secret")

# A patch refuses a deleted current version (hvac reads first, and the read raises).
expect(exceptions.InvalidPath, kv.patch, path="hvac", secret={"a": "b"}, mount_point=MOUNT)
step("patch of a deleted version")

no_content(kv.undelete_secret_versions(path="hvac", versions=[9], mount_point=MOUNT))
assert kv.read_secret(path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)["data"]["data"]["pssst"] == "patched"
no_content(kv.delete_secret_versions(path="hvac", versions=[2, 4, 6, 42], mount_point=MOUNT))
m = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]
for n in range(1, 10):
    d = m["versions"][str(n)]["deletion_time"]
    assert (d != "") == (n in (2, 4, 6)), (n, m["versions"])
assert "42" not in m["versions"], m["versions"]
no_content(kv.undelete_secret_versions(path="hvac", versions=[4, 6, 42], mount_point=MOUNT))
m = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]
assert [n for n in range(1, 10) if m["versions"][str(n)]["deletion_time"] != ""] == [2], m["versions"]
assert kv.read_secret_version(path="hvac", version=4, mount_point=MOUNT, raise_on_deleted_version=True)["data"]["data"] == {"pssst": "four"}
for bad in (None, [], "1"):
    expect(exceptions.ParamValidationError, kv.delete_secret_versions, path="hvac", versions=bad, mount_point=MOUNT)
    expect(exceptions.ParamValidationError, kv.undelete_secret_versions, path="hvac", versions=bad, mount_point=MOUNT)
    expect(exceptions.ParamValidationError, kv.destroy_secret_versions, path="hvac", versions=bad, mount_point=MOUNT)
step("delete_secret_versions/undelete_secret_versions")

no_content(kv.destroy_secret_versions(path="hvac", versions=[3, 42], mount_point=MOUNT))
m = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]
assert [n for n in range(1, 10) if m["versions"][str(n)]["destroyed"]] == [3], m["versions"]
assert m["versions"]["3"]["deletion_time"] == "", m["versions"]["3"]
# A destroyed version reads as 404 with destroyed: true and no deletion time, so hvac raises
# even when told not to for deleted versions.
e = expect(exceptions.InvalidPath, kv.read_secret_version, path="hvac", version=3, mount_point=MOUNT, raise_on_deleted_version=False)
status(404)
assert e.json["data"]["data"] is None, e.json
version_meta(e.json["data"]["metadata"], 3, destroyed=True)
# Undeleting a destroyed version does not bring it back.
no_content(kv.undelete_secret_versions(path="hvac", versions=[3], mount_point=MOUNT))
expect(exceptions.InvalidPath, kv.read_secret_version, path="hvac", version=3, mount_point=MOUNT, raise_on_deleted_version=True)
# Destroying a deleted version: destroyed, and its deletion time stays.
no_content(kv.destroy_secret_versions(path="hvac", versions=[2], mount_point=MOUNT))
v2 = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]["versions"]["2"]
assert v2["destroyed"] is True and v2["deletion_time"] != "", v2
step("destroy_secret_versions")

# Calls on a secret that does not exist: 204, nothing created.
no_content(kv.delete_latest_version_of_secret(path="no-secret-here", mount_point=MOUNT))
no_content(kv.delete_secret_versions(path="no-secret-here", versions=[1], mount_point=MOUNT))
no_content(kv.undelete_secret_versions(path="no-secret-here", versions=[1], mount_point=MOUNT))
no_content(kv.destroy_secret_versions(path="no-secret-here", versions=[1], mount_point=MOUNT))
expect(exceptions.InvalidPath, kv.read_secret_metadata, path="no-secret-here", mount_point=MOUNT)
status(404)
step("version calls on an absent secret")

# ------------------------------------------------------------------------------------------
# Listing.

kv.create_or_update_secret(path="hvac-dir/top-secret", secret={"pssst": "hi"}, mount_point=MOUNT)
kv.create_or_update_secret(path="hvac-dir/sub/deeper", secret={"pssst": "hi"}, mount_point=MOUNT)
ls = kv.list_secrets(path="hvac-dir", mount_point=MOUNT)
status(200)
envelope(ls, "list_secrets")
assert ls["data"] == {"keys": ["sub/", "top-secret"]}, ls
assert kv.list_secrets(path="hvac-dir/", mount_point=MOUNT)["data"] == {"keys": ["sub/", "top-secret"]}
root_keys = kv.list_secrets(path="", mount_point=MOUNT)["data"]["keys"]
assert root_keys == ["fresh", "hvac", "hvac-dir/", "typed"], root_keys
expect(exceptions.InvalidPath, kv.list_secrets, path="empty-folder", mount_point=MOUNT)
status(404)
# A folder whose only secret went away is empty again.
kv.delete_metadata_and_all_versions(path="hvac-dir/sub/deeper", mount_point=MOUNT)
assert kv.list_secrets(path="hvac-dir", mount_point=MOUNT)["data"] == {"keys": ["top-secret"]}
expect(exceptions.InvalidPath, kv.list_secrets, path="hvac-dir/sub", mount_point=MOUNT)
step("list_secrets")

# ------------------------------------------------------------------------------------------
# Metadata.

m = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)
status(200)
envelope(m, "read_secret_metadata")
d = m["data"]
for k in ("cas_required", "created_time", "current_version", "custom_metadata", "delete_version_after", "max_versions", "oldest_version", "updated_time", "versions"):
    assert k in d, f"metadata lacks {k}: {d}"
assert d["current_version"] == 9 and d["oldest_version"] == 0, d
assert d["max_versions"] == 0 and d["cas_required"] is False and d["delete_version_after"] == "0s", d
assert d["custom_metadata"] is None, d
rfc3339(d["created_time"], "created_time")
rfc3339(d["updated_time"], "updated_time")
assert sorted(d["versions"]) == [str(n) for n in range(1, 10)], d["versions"]
for n, v in d["versions"].items():
    assert set(v) == {"created_time", "deletion_time", "destroyed"}, v
    rfc3339(v["created_time"], f"versions.{n}.created_time")
step("read_secret_metadata")

no_content(kv.update_metadata(path="hvac", mount_point=MOUNT))
no_content(kv.update_metadata(path="hvac", max_versions=7, mount_point=MOUNT))
assert kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]["max_versions"] == 7
no_content(kv.update_metadata(path="hvac", max_versions=0, mount_point=MOUNT))
assert kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]["max_versions"] == 0
no_content(kv.update_metadata(path="hvac", cas_required=True, delete_version_after="30s", custom_metadata={"color": "blue", "type": "api-token"}, mount_point=MOUNT))
d = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]
assert d["cas_required"] is True and d["delete_version_after"] == "30s", d
assert d["custom_metadata"] == {"color": "blue", "type": "api-token"}, d
# A version read carries the secret's custom_metadata.
r = kv.read_secret_version(path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)["data"]
assert r["metadata"]["custom_metadata"] == {"color": "blue", "type": "api-token"}, r
expect(exceptions.ParamValidationError, kv.update_metadata, path="hvac", cas_required="cats", mount_point=MOUNT)
expect(exceptions.ParamValidationError, kv.update_metadata, path="hvac", custom_metadata="not-a-dict", mount_point=MOUNT)
# update_metadata sends delete_version_after="0s" unless told otherwise, which turns it off.
no_content(kv.update_metadata(path="hvac", cas_required=False, mount_point=MOUNT))
d = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]
assert d["delete_version_after"] == "0s" and d["cas_required"] is False, d
assert d["custom_metadata"] == {"color": "blue", "type": "api-token"}, d
# Bad input is refused, naming the field, and changes nothing.
e = expect(exceptions.InvalidRequest, kv.update_metadata, path="hvac", delete_version_after="bogus", mount_point=MOUNT)
assert "delete_version_after" in str(e), e
e = expect(exceptions.InvalidRequest, kv.update_metadata, path="hvac", max_versions="many", mount_point=MOUNT)
assert "max_versions" in str(e), e
assert kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"] == d
# custom_metadata values are strings: numbers and booleans come back as Vault stores them.
no_content(kv.update_metadata(path="cm-types", custom_metadata={"n": 3, "on": True, "off": False}, mount_point=MOUNT))
cm = kv.read_secret_metadata(path="cm-types", mount_point=MOUNT)["data"]["custom_metadata"]
assert cm == {"n": "3", "on": "1", "off": "0"}, cm
no_content(kv.delete_metadata_and_all_versions(path="cm-types", mount_point=MOUNT))
step("update_metadata")

# max_versions on the secret prunes the oldest versions on the next write. When the mount
# and the secret both set one, the greater applies (Vault's rule); 0 means unset.
no_content(kv.update_metadata(path="fresh", max_versions=2, mount_point=MOUNT))
no_content(kv.configure(max_versions=3, mount_point=MOUNT))
for n in range(3, 6):
    version_meta(kv.create_or_update_secret(path="fresh", secret={"a": str(n)}, mount_point=MOUNT)["data"], n)
d = kv.read_secret_metadata(path="fresh", mount_point=MOUNT)["data"]
assert sorted(d["versions"]) == ["3", "4", "5"] and d["oldest_version"] == 3 and d["current_version"] == 5, d
no_content(kv.configure(max_versions=0, mount_point=MOUNT))
version_meta(kv.create_or_update_secret(path="fresh", secret={"a": "6"}, mount_point=MOUNT)["data"], 6)
d = kv.read_secret_metadata(path="fresh", mount_point=MOUNT)["data"]
assert sorted(d["versions"]) == ["5", "6"] and d["oldest_version"] == 5 and d["current_version"] == 6, d
assert d["max_versions"] == 2, d
expect(exceptions.InvalidPath, kv.read_secret_version, path="fresh", version=1, mount_point=MOUNT, raise_on_deleted_version=False)
kv.configure(max_versions=10, mount_point=MOUNT)
step("max_versions prunes")

# delete_version_after on the secret: each new version carries its deletion time, and an
# undeleted version is scheduled again from the moment it is undeleted.
no_content(kv.update_metadata(path="timed", delete_version_after="1h", mount_point=MOUNT))
w = kv.create_or_update_secret(path="timed", secret={"a": "1"}, mount_point=MOUNT)["data"]
created = parse_time(w["created_time"])
due = parse_time(w["deletion_time"])
assert abs((due - created).total_seconds() - 3600) < 1, w
r = kv.read_secret_version(path="timed", mount_point=MOUNT, raise_on_deleted_version=True)["data"]
assert r["data"] == {"a": "1"} and r["metadata"]["deletion_time"] == w["deletion_time"], r
no_content(kv.delete_latest_version_of_secret(path="timed", mount_point=MOUNT))
expect(exceptions.InvalidPath, kv.read_secret_version, path="timed", mount_point=MOUNT, raise_on_deleted_version=True)
no_content(kv.undelete_secret_versions(path="timed", versions=[1], mount_point=MOUNT))
r = kv.read_secret_version(path="timed", mount_point=MOUNT, raise_on_deleted_version=True)["data"]
assert r["data"] == {"a": "1"}, r
rearmed = parse_time(r["metadata"]["deletion_time"])
now = datetime.datetime.now(datetime.timezone.utc)
assert 3500 < (rearmed - now).total_seconds() <= 3600, (r, now)
step("delete_version_after")

# Metadata written before any data: a secret with no versions yet.
no_content(kv.update_metadata(path="meta-only", max_versions=3, custom_metadata={"owner": "me"}, mount_point=MOUNT))
d = kv.read_secret_metadata(path="meta-only", mount_point=MOUNT)["data"]
assert d["current_version"] == 0 and d["versions"] == {} and d["custom_metadata"] == {"owner": "me"}, d
expect(exceptions.InvalidPath, kv.read_secret_version, path="meta-only", mount_point=MOUNT, raise_on_deleted_version=False)
version_meta(kv.create_or_update_secret(path="meta-only", secret={"a": "1"}, mount_point=MOUNT)["data"], 1, custom={"owner": "me"})
step("metadata before data")

no_content(kv.delete_metadata_and_all_versions(path="hvac", mount_point=MOUNT))
expect(exceptions.InvalidPath, kv.read_secret_metadata, path="hvac", mount_point=MOUNT)
expect(exceptions.InvalidPath, kv.read_secret_version, path="hvac", version=4, mount_point=MOUNT, raise_on_deleted_version=False)
no_content(kv.delete_metadata_and_all_versions(path="hvac", mount_point=MOUNT))
# Written again, the secret starts over at version 1.
version_meta(kv.create_or_update_secret(path="hvac", secret={"again": "1"}, cas=0, mount_point=MOUNT)["data"], 1)
step("delete_metadata_and_all_versions")

# Subkeys (hvac has no method for it; the generic read gets it).
kv.create_or_update_secret(path="nested", secret={"a": {"b": {"c": "x"}}, "d": "y"}, mount_point=MOUNT)
r = client.read(f"{MOUNT}/subkeys/nested")
assert r["data"]["subkeys"] == {"a": {"b": {"c": None}}, "d": None}, r
version_meta(r["data"]["metadata"], 1)
r = client.adapter.get(f"/v1/{MOUNT}/subkeys/nested", params={"depth": 1})
assert r["data"]["subkeys"] == {"a": None, "d": None}, r
step("subkeys")

# A token's policy decides, path by path: data/ for the secret, metadata/ for listing.
client.sys.create_or_update_policy(
    name="kv-reader",
    policy=f'path "{MOUNT}/data/hvac" {{ capabilities = ["read"] }}\npath "{MOUNT}/metadata/*" {{ capabilities = ["list"] }}',
)
reader = hvac.Client(url=ADDR, token=client.auth.token.create(policies=["kv-reader"], ttl="10m")["auth"]["client_token"])
assert reader.is_authenticated()
assert reader.secrets.kv.v2.read_secret(path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)["data"]["data"] == {"again": "1"}
assert "hvac" in reader.secrets.kv.v2.list_secrets(path="", mount_point=MOUNT)["data"]["keys"]
expect(exceptions.Forbidden, reader.secrets.kv.v2.read_secret, path="nested", mount_point=MOUNT, raise_on_deleted_version=True)
expect(exceptions.Forbidden, reader.secrets.kv.v2.read_secret_metadata, path="hvac", mount_point=MOUNT)
expect(exceptions.Forbidden, reader.secrets.kv.v2.create_or_update_secret, path="hvac", secret={"x": "1"}, mount_point=MOUNT)
expect(exceptions.Forbidden, reader.secrets.kv.v2.patch, path="hvac", secret={"x": "1"}, mount_point=MOUNT)
expect(exceptions.Forbidden, reader.secrets.kv.v2.delete_latest_version_of_secret, path="hvac", mount_point=MOUNT)
expect(exceptions.Forbidden, reader.secrets.kv.v2.destroy_secret_versions, path="hvac", versions=[1], mount_point=MOUNT)
expect(exceptions.Forbidden, reader.secrets.kv.v2.delete_metadata_and_all_versions, path="hvac", mount_point=MOUNT)
assert kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]["versions"]["1"]["destroyed"] is False
step("policies")

# ------------------------------------------------------------------------------------------
# kv's default version switch: v2 unless told, v1 on request.

assert client.secrets.kv.default_kv_version == "2"
client.sys.enable_secrets_engine(backend_type="kv", path="kvv1", options={"version": "1"})
r = client.secrets.kv.read_secret_version(path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)
assert r["data"]["data"] == {"again": "1"}, r
client.secrets.kv.default_kv_version = 1
assert client.secrets.kv.default_kv_version == "1"
no_content(client.secrets.kv.create_or_update_secret(path="foo", secret={"baz": "bar"}, mount_point="kvv1"))
r = client.secrets.kv.read_secret(path="foo", mount_point="kvv1")
assert r["data"] == {"baz": "bar"}, r
# A version 1 style read on the version 2 mount: 404, with Vault's warning.
e = expect(exceptions.InvalidPath, client.secrets.kv.read_secret, path="hvac", mount_point=MOUNT)
assert e.json["data"] is None and any("Invalid path for a versioned K/V secrets engine" in w for w in e.json["warnings"]), e.json
expect(ValueError, setattr, client.secrets.kv, "default_kv_version", 3)
client.secrets.kv.default_kv_version = "2"
r = client.secrets.kv.read_secret_version(path="hvac", mount_point=MOUNT, raise_on_deleted_version=True)
assert r["data"]["metadata"]["version"] == 1, r
step("default_kv_version")

# ------------------------------------------------------------------------------------------
# hvac.Client's own calls: read, write, write_data, list, delete.

assert client.write("kvv1/foo", zap="zip") is not None
status(204)
r = client.read("kvv1/foo")
status(200)
# KV version 1 reports the mount's default TTL (32 days) as a refresh interval.
envelope(r, "read", lease_duration=2764800)
assert r["data"] == {"zap": "zip"}, r
assert client.read("kvv1/I/dont/exist") is None
status(404)
client.write("kvv1/test-list/bar/foo", value="bar")
client.write("kvv1/test-list/foo", value="bar")
assert client.list("kvv1/test-list")["data"]["keys"] == ["bar/", "foo"]
assert client.list("kvv1/nothing-here") is None
# write_data takes keys that write() cannot (path, wrap_ttl).
client.write_data("kvv1/fix", data={"path": "foo1", "foo": "foo2", "wrap_ttl": "x"})
assert client.read("kvv1/fix")["data"] == {"path": "foo1", "foo": "foo2", "wrap_ttl": "x"}
client.write("kvv1/http://test.com", foo="bar")
assert client.read("kvv1/http://test.com")["data"]["foo"] == "bar"
assert client.delete("kvv1/foo") is None
status(204)
assert client.read("kvv1/foo") is None
# The generic calls on the version 2 mount take its real paths.
r = client.write_data(f"{MOUNT}/data/generic", data={"data": {"k": "v"}, "options": {"cas": 0}})
version_meta(r["data"], 1)
assert client.read(f"{MOUNT}/data/generic")["data"]["data"] == {"k": "v"}
assert client.list(f"{MOUNT}/metadata")["data"]["keys"] == ["fresh", "generic", "hvac", "hvac-dir/", "meta-only", "nested", "timed", "typed"]
# A version 1 style path there reads as nothing.
assert client.read(f"{MOUNT}/generic") is None
client.delete(f"{MOUNT}/metadata/generic")
assert client.read(f"{MOUNT}/data/generic") is None
step("read/write/write_data/list/delete")

# A write that returns data (transit) hands it back.
client.sys.enable_secrets_engine("transit")
client.write("transit/keys/foo")
ct = client.write("transit/encrypt/foo", plaintext="dGVzdA==")["data"]["ciphertext"]
assert client.write("transit/decrypt/foo", ciphertext=ct)["data"]["plaintext"] == "dGVzdA=="
step("write with response")

# wrap_ttl: the answer comes back response-wrapped, and unwraps to what it would have been.
client.sys.enable_auth_method("approle")
client.write("auth/approle/role/testrole")
wrapped = client.write_data("auth/approle/role/testrole/secret-id", wrap_ttl="10s")
status(200)
wi = wrapped["wrap_info"]
assert wrapped["data"] is None and wrapped["auth"] is None, wrapped
assert wi["ttl"] == 10 and wi["token"] and wi["accessor"], wi
assert wi["creation_path"] == "auth/approle/role/testrole/secret-id", wi
rfc3339(wi["creation_time"], "wrap_info.creation_time")
un = client.sys.unwrap(wi["token"])
assert un["data"]["secret_id"] and un["data"]["secret_id_accessor"], un
expect(exceptions.InvalidRequest, client.sys.unwrap, wi["token"])
# write()'s positional wrap_ttl, and a wrapped read.
wrapped = client.write("auth/approle/role/testrole/secret-id", "1m")
assert wrapped["wrap_info"]["ttl"] == 60, wrapped
r = client.read("kvv1/fix", wrap_ttl="30s")
assert r["data"] is None and r["wrap_info"]["ttl"] == 30, r
assert client.sys.unwrap(r["wrap_info"]["token"])["data"] == {"path": "foo1", "foo": "foo2", "wrap_ttl": "x"}
# A wrap_ttl that is not a duration is refused with 400 naming the header, before anything
# is written.
before = kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]["current_version"]
for bad in ("abc", "-1s"):
    e = expect(exceptions.InvalidRequest, client.write_data, f"{MOUNT}/data/hvac", data={"data": {"x": "y"}}, wrap_ttl=bad)
    status(400)
    assert any("wrap" in m.lower() for m in e.errors), e.errors
assert kv.read_secret_metadata(path="hvac", mount_point=MOUNT)["data"]["current_version"] == before
step("wrap_ttl")

# ------------------------------------------------------------------------------------------
# Tokens.

created = client.auth.token.create(ttl="1h", renewable=True)
tok = created["auth"]["client_token"]
look = client.lookup_token(tok)
assert look["data"]["id"] == tok, look
self_look = client.lookup_token()
assert self_look["data"]["id"] == ROOT and self_look["data"]["policies"] == ["root"], self_look
renewed = client.renew_token(tok)
assert renewed["auth"]["client_token"] == tok and renewed["auth"]["renewable"] is True, renewed
renewed = client.renew_token(tok, increment="30m")
assert 0 < renewed["auth"]["lease_duration"] <= 1800, renewed
assert client.revoke_token(tok) is None
status(204)
expect(exceptions.Forbidden, client.lookup_token, tok)
step("lookup_token/renew_token/revoke_token")

created = client.auth.token.create(ttl="1h")
accessor = created["auth"]["accessor"]
look = client.lookup_token(accessor, accessor=True)
assert look["data"]["accessor"] == accessor and look["data"]["id"] == "", look
wrapped = client.lookup_token(accessor, accessor=True, wrap_ttl="1m")
assert wrapped["wrap_info"]["ttl"] == 60, wrapped
client.revoke_token(accessor, accessor=True)
expect(exceptions.InvalidRequest, client.lookup_token, accessor, accessor=True)
expect(exceptions.Forbidden, client.lookup_token, created["auth"]["client_token"])
orphan_parent = client.auth.token.create(ttl="1h")["auth"]["client_token"]
child_client = hvac.Client(url=ADDR, token=orphan_parent)
child = child_client.auth.token.create(ttl="1h")["auth"]["client_token"]
client.revoke_token(orphan_parent, orphan=True)
assert client.lookup_token(child)["data"]["orphan"] is True
expect(exceptions.InvalidRequest, client.revoke_token, "x", orphan=True, accessor=True)
step("token accessor/orphan")

assert client.is_authenticated()
assert not hvac.Client(url=ADDR, token="not-a-real-token").is_authenticated()
no_token = hvac.Client(url=ADDR)
no_token.token = None
assert not no_token.is_authenticated()
# A request without a token is refused as Vault refuses it: 403, which hvac reads as Forbidden.
expect(exceptions.Forbidden, no_token.lookup_token)
step("is_authenticated")

other = hvac.Client(url=ADDR, token=client.auth.token.create(ttl="1h")["auth"]["client_token"])
kept = other.token
other.logout()
assert other.token is None and not other.is_authenticated()
other.token = kept
assert other.is_authenticated(), "logout without revoke_token must leave the token valid"
other.logout(revoke_token=True)
assert other.token is None
other.token = kept
assert not other.is_authenticated()
step("logout")

client.sys.enable_auth_method("userpass")
client.write("auth/userpass/users/testuser", password="testpass", policies="not_root")
lc = hvac.Client(url=ADDR)
r = lc.login("/v1/auth/userpass/login/testuser", json={"password": "testpass"})
assert lc.token == r["auth"]["client_token"] and lc.is_authenticated(), r
assert r["auth"]["policies"] == ["default", "not_root"], r
kept = lc.token
r = lc.login("/v1/auth/userpass/login/testuser", use_token=False, json={"password": "testpass"})
assert lc.token == kept and r["auth"]["client_token"] != kept, r
expect(exceptions.InvalidRequest, lc.login, "/v1/auth/userpass/login/testuser", json={"password": "nope"})
assert lc.token == kept
step("login")

resp = client.auth.token.create(ttl="6h", wrap_ttl="1h")
assert resp["wrap_info"]["ttl"] == 3600 and resp["auth"] is None, resp
assert resp["wrap_info"]["creation_path"] == "auth/token/create", resp["wrap_info"]
wrapped_token = resp["wrap_info"]["token"]
cub = hvac.Client(url=ADDR)
out = cub.auth_cubbyhole(wrapped_token)
assert cub.token == out["auth"]["client_token"], out
assert cub.token not in (ROOT, wrapped_token) and cub.is_authenticated()
assert 0 < cub.lookup_token()["data"]["ttl"] <= 6 * 3600
# The wrapping token is single use.
expect(exceptions.InvalidRequest, hvac.Client(url=ADDR).auth_cubbyhole, wrapped_token)
step("auth_cubbyhole")

ss = client.seal_status
assert ss["sealed"] is False and ss["initialized"] is True and ss["type"] == "shamir", ss
assert client.sys.is_sealed() is False
assert client.sys.is_initialized() is True
step("seal_status/is_sealed/is_initialized")

c2 = hvac.Client(url="http://127.0.0.1:1", token="t")
c2.url = ADDR
c2.token = ROOT
assert c2.url == ADDR and c2.is_authenticated()
step("url/token properties")

print("ALL OK", flush=True)
