"""hvac's `client.sys`, token, userpass, cert and KV v1 calls against a running Tresor
(driven by tests/sys_hvac.rs).

Environment: VAULT_ADDR, PART (`sys`, `auth` or `lifecycle`), WORKDIR (a scratch directory);
`sys` and `auth` also VAULT_TOKEN (the dev server's root token); `lifecycle` also VAULT_CACERT
(the TLS listener's certificate) and, for the cert login, CLIENT_CERT, CLIENT_KEY and CLIENT_CA.
Every call goes through hvac's public API as a user's script would, with the arguments hvac's
docs show; each answer is checked against Vault's documented behaviour (status code, envelope,
field names and types). Prints "OK <step>" lines and exits non-zero on the first failure.
"""

import base64
import json
import os
import subprocess

import hvac
import requests
from hvac import exceptions

ADDR = os.environ["VAULT_ADDR"]
PART = os.environ["PART"]
WORK = os.environ["WORKDIR"]
ENVELOPE = {"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"}


def step(name):
    print("OK", name, flush=True)


def no_content(r, what):
    """A write without data: hvac hands back the raw response, a 204 with an empty body."""
    assert isinstance(r, requests.Response), f"{what}: expected a 204 response, got {r!r}"
    assert r.status_code == 204 and r.text == "", f"{what}: {r.status_code} {r.text!r}"


def envelope(r, what):
    """A logical answer: a dict with Vault's envelope, no wrap_info, no warnings."""
    assert isinstance(r, dict), f"{what}: not JSON: {r!r}"
    missing = ENVELOPE - set(r)
    assert not missing, f"{what}: envelope lacks {missing}: {r}"
    assert r["wrap_info"] is None and r["warnings"] is None, f"{what}: {r}"
    assert isinstance(r["request_id"], str) and r["request_id"], r
    return r["data"]


def raises(exc, fn, contains=None):
    """Calls fn, which must raise hvac's `exc`; the errors list must mention `contains`."""
    try:
        got = fn()
    except exc as e:
        if contains is not None:
            text = " ".join(e.errors or []) if isinstance(e.errors, list) else str(e.errors)
            assert contains in text, f"{exc}: {contains!r} not in {e.errors!r}"
        return e
    raise AssertionError(f"expected {exc}, got {got!r}")


def raw(method, path, token, body=None):
    """One request with `requests`: (status, parsed JSON body or None)."""
    r = requests.request(
        method,
        f"{ADDR}/v1/{path}",
        headers={"X-Vault-Token": token} if token else {},
        json=body,
        timeout=20,
        verify=os.environ.get("VAULT_CACERT", True),
    )
    return r.status_code, (r.json() if r.text.strip() else None)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# ---------------------------------------------------------------------------------------------
def part_sys():
    c = hvac.Client(url=ADDR, token=os.environ["VAULT_TOKEN"], timeout=20)
    s = c.sys

    # --- mounts -------------------------------------------------------------------------------
    no_content(
        s.enable_secrets_engine("kv", path="kvv1", description="hvac kv", options={"version": "1"}),
        "enable_secrets_engine",
    )
    mounts = s.list_mounted_secrets_engines()
    data = envelope(mounts, "list_mounted_secrets_engines")
    # Vault answers sys/mounts with the mounts both at the top level and under data.
    for path in ("kvv1/", "secret/", "sys/", "cubbyhole/", "identity/"):
        assert path in data and mounts[path] == data[path], (path, mounts)
    kv = data["kvv1/"]
    assert kv["type"] == "kv" and kv["description"] == "hvac kv", kv
    assert kv["options"] == {"version": "1"}, kv
    for k, t in [("accessor", str), ("uuid", str), ("local", bool), ("seal_wrap", bool),
                 ("external_entropy_access", bool), ("plugin_version", str),
                 ("running_plugin_version", str), ("config", dict)]:
        assert isinstance(kv[k], t), (k, kv)
    assert kv["accessor"].startswith("kv_"), kv
    cfg = kv["config"]
    assert cfg["default_lease_ttl"] == 0 and cfg["max_lease_ttl"] == 0, cfg
    assert cfg["force_no_cache"] is False, cfg
    assert s.retrieve_mount_option("kvv1", "version") == "1"
    assert s.retrieve_mount_option("secret", "version") == "2"
    step("enable_secrets_engine/list_mounted_secrets_engines")

    tune = s.read_mount_configuration("kvv1")
    t = envelope(tune, "read_mount_configuration")
    # Unlike sys/mounts, the tune read shows the effective TTLs: the system's 768h here.
    assert t["default_lease_ttl"] == 2764800 and t["max_lease_ttl"] == 2764800, t
    assert is_int(t["default_lease_ttl"]) and is_int(t["max_lease_ttl"]), t
    assert t["description"] == "hvac kv" and t["force_no_cache"] is False, t
    assert t["options"] == {"version": "1"}, t
    assert tune["default_lease_ttl"] == 2764800, "sys/mounts/:path/tune copies data to the top level"
    no_content(
        s.tune_mount_configuration(
            "kvv1",
            default_lease_ttl="3600s",
            max_lease_ttl=8600,
            description="tuned",
            audit_non_hmac_request_keys=["a"],
            audit_non_hmac_response_keys=["b"],
            listing_visibility="unauth",
            passthrough_request_headers=["X-Hvac"],
        ),
        "tune_mount_configuration",
    )
    t = envelope(s.read_mount_configuration("kvv1"), "read_mount_configuration")
    assert (t["default_lease_ttl"], t["max_lease_ttl"]) == (3600, 8600), t
    assert t["description"] == "tuned" and t["listing_visibility"] == "unauth", t
    assert t["audit_non_hmac_request_keys"] == ["a"], t
    assert t["audit_non_hmac_response_keys"] == ["b"], t
    assert t["passthrough_request_headers"] == ["X-Hvac"], t
    listed = s.list_mounted_secrets_engines()["data"]["kvv1/"]["config"]
    assert (listed["default_lease_ttl"], listed["max_lease_ttl"]) == (3600, 8600), listed
    raises(exceptions.InvalidRequest, lambda: s.tune_mount_configuration("kvv1", default_lease_ttl="banana"),
           "default_lease_ttl")
    raises(exceptions.InvalidRequest,
           lambda: s.tune_mount_configuration("kvv1", default_lease_ttl="10h", max_lease_ttl="1h"))
    assert s.read_mount_configuration("kvv1")["data"]["max_lease_ttl"] == 8600, "a refused tune changed nothing"
    step("read_mount_configuration/tune_mount_configuration")

    raises(exceptions.InvalidRequest, lambda: s.enable_secrets_engine("kv", path="kvv1"), "already in use")
    r = s.move_backend("kvv1", "kvmoved")
    assert isinstance(r, dict) and isinstance(r["data"]["migration_id"], str), r
    after = s.list_mounted_secrets_engines()["data"]
    assert "kvv1/" not in after and after["kvmoved/"]["description"] == "tuned", after.keys()
    no_content(s.disable_secrets_engine("kvmoved"), "disable_secrets_engine")
    assert "kvmoved/" not in s.list_mounted_secrets_engines()["data"]
    # Disabling a path nothing is mounted at is not an error in Vault either.
    no_content(s.disable_secrets_engine("kvmoved"), "disable_secrets_engine (absent)")
    step("move_backend/disable_secrets_engine")

    # --- auth methods -------------------------------------------------------------------------
    no_content(
        s.enable_auth_method("userpass", description="hvac users", config={"default_lease_ttl": "1h"}, path="hvac-up"),
        "enable_auth_method",
    )
    methods = s.list_auth_methods()
    data = envelope(methods, "list_auth_methods")
    assert "token/" in data and "hvac-up/" in data and methods["hvac-up/"] == data["hvac-up/"], methods
    up = data["hvac-up/"]
    assert up["type"] == "userpass" and up["description"] == "hvac users", up
    assert up["accessor"].startswith("auth_userpass_") and isinstance(up["uuid"], str), up
    assert up["config"]["default_lease_ttl"] == 3600 and up["config"]["token_type"] == "default-service", up
    t = envelope(s.read_auth_method_tuning("hvac-up"), "read_auth_method_tuning")
    assert (t["default_lease_ttl"], t["max_lease_ttl"]) == (3600, 2764800), t
    assert t["description"] == "hvac users" and t["force_no_cache"] is False, t
    assert t["token_type"] == "default-service", t
    no_content(
        s.tune_auth_method("hvac-up", description="this is a test auth backend", max_lease_ttl=12345678,
                           listing_visibility="unauth", audit_non_hmac_request_keys=["password"]),
        "tune_auth_method",
    )
    t = envelope(s.read_auth_method_tuning("hvac-up"), "read_auth_method_tuning")
    assert t["max_lease_ttl"] == 12345678 and t["description"] == "this is a test auth backend", t
    assert t["listing_visibility"] == "unauth" and t["audit_non_hmac_request_keys"] == ["password"], t
    raises(exceptions.InvalidRequest, lambda: s.read_auth_method_tuning("hvac-none"))
    no_content(s.disable_auth_method("hvac-up"), "disable_auth_method")
    assert "hvac-up/" not in s.list_auth_methods()["data"]
    step("enable_auth_method/list_auth_methods/read_auth_method_tuning/tune_auth_method")

    # --- policies -----------------------------------------------------------------------------
    hcl = 'path "secret/data/hvac/*" {\n  capabilities = ["read", "list"]\n}\n'
    no_content(s.create_or_update_policy("hvac-hcl", hcl), "create_or_update_policy")
    p = s.read_policy("hvac-hcl")
    d = envelope(p, "read_policy")
    assert d == {"name": "hvac-hcl", "rules": hcl}, d
    assert p["rules"] == hcl, "sys/policy/:name copies data to the top level"
    as_dict = {"path": {"test-path": {"capabilities": ["read"]}}}
    for pretty in (True, False):
        no_content(s.create_or_update_policy("hvac-json", as_dict, pretty_print=pretty), "policy as dict")
        rules = s.read_policy("hvac-json")["data"]["rules"]
        assert json.loads(rules) == as_dict, rules
        assert (len(rules.splitlines()) > 1) == pretty, rules
    pl = s.list_policies()
    d = envelope(pl, "list_policies")
    for name in ("root", "default", "hvac-hcl", "hvac-json"):
        assert name in d["policies"] and name in d["keys"], d
    assert pl["policies"] == d["policies"], pl
    raises(exceptions.InvalidRequest, lambda: s.create_or_update_policy("hvac-bad", 'path "x" { capabilities = '))
    raises(exceptions.InvalidPath, lambda: s.read_policy("hvac-bad"))
    no_content(s.delete_policy("hvac-json"), "delete_policy")
    assert "hvac-json" not in s.list_policies()["data"]["policies"]
    raises(exceptions.InvalidPath, lambda: s.read_policy("hvac-json"))
    step("read_policy/create_or_update_policy/list_policies/delete_policy")

    acl = 'path "sys/health" { capabilities = ["read", "sudo"]}'
    no_content(s.create_or_update_acl_policy("hvac-acl", acl), "create_or_update_acl_policy")
    assert s.read_acl_policy("hvac-acl")["data"] == {"name": "hvac-acl", "policy": acl}
    no_content(s.create_or_update_acl_policy("hvac-acl", as_dict, pretty_print=False), "acl update")
    d = s.read_acl_policy("hvac-acl")["data"]
    assert json.loads(d["policy"]) == as_dict and len(d["policy"].splitlines()) == 1, d
    keys = envelope(s.list_acl_policies(), "list_acl_policies")["keys"]
    assert "hvac-acl" in keys and "root" in keys and "default" in keys, keys
    no_content(s.delete_acl_policy("hvac-acl"), "delete_acl_policy")
    raises(exceptions.InvalidPath, lambda: s.read_acl_policy("hvac-acl"))
    # The root policy cannot be changed or removed; Sentinel policies are Enterprise-only.
    raises(exceptions.InvalidRequest, lambda: s.delete_acl_policy("root"))
    raises(exceptions.InvalidPath, lambda: s.list_rgp_policies())
    raises(exceptions.InvalidPath, lambda: s.list_egp_policies())
    step("sys/policies/acl")

    # --- capabilities -------------------------------------------------------------------------
    caps = s.get_capabilities(["secret/data/hvac/x", "sys/mounts"])
    d = envelope(caps, "get_capabilities (self)")
    assert d == {"secret/data/hvac/x": ["root"], "sys/mounts": ["root"]}, d
    assert caps["sys/mounts"] == ["root"], "sys/capabilities-self copies data to the top level"
    tok = c.auth.token.create(policies=["hvac-hcl"], ttl="10m")["auth"]
    d = envelope(s.get_capabilities(["secret/data/hvac/x"], token=tok["client_token"]), "get_capabilities (token)")
    # One path: Vault adds the old single-path `capabilities` key too.
    assert d == {"secret/data/hvac/x": ["list", "read"], "capabilities": ["list", "read"]}, d
    d = envelope(s.get_capabilities(["secret/data/hvac/x", "secret/data/other"], accessor=tok["accessor"]),
                 "get_capabilities (accessor)")
    assert d == {"secret/data/hvac/x": ["list", "read"], "secret/data/other": ["deny"]}, d
    step("get_capabilities")

    # --- audit --------------------------------------------------------------------------------
    d = envelope(s.list_enabled_audit_devices(), "list_enabled_audit_devices")
    assert d == {}, d
    log = os.path.join(WORK, "hvac-audit.log")
    no_content(s.enable_audit_device("file", description="hvac", options={"file_path": log}, path="hvac-file"),
               "enable_audit_device")
    # hvac's own tests still pass the old `path` option.
    legacy = os.path.join(WORK, "hvac-audit-legacy.log")
    no_content(s.enable_audit_device("file", options={"path": legacy}, path="hvac-legacy"), "enable_audit_device path")
    devices = s.list_enabled_audit_devices()
    d = envelope(devices, "list_enabled_audit_devices")
    assert d["hvac-file/"] == {"type": "file", "description": "hvac", "options": {"file_path": log},
                               "local": False, "path": "hvac-file/"}, d
    assert devices["hvac-file/"] == d["hvac-file/"], "sys/audit copies data to the top level"
    h = envelope(s.calculate_hash("hvac-file", "hvac-rox"), "calculate_hash")["hash"]
    assert h.startswith("hmac-sha256:") and len(h) == len("hmac-sha256:") + 64, h
    assert s.calculate_hash("hvac-file", "hvac-rox")["data"]["hash"] == h, "same input, same hash"
    no_content(s.disable_audit_device("hvac-file"), "disable_audit_device")
    no_content(s.disable_audit_device("hvac-legacy"), "disable_audit_device")
    assert os.path.getsize(log) > 0, "the device wrote the requests it saw"
    raises(exceptions.InvalidRequest, lambda: s.calculate_hash("hvac-file", "x"), "unknown audit backend")
    assert envelope(s.list_enabled_audit_devices(), "list_enabled_audit_devices") == {}
    step("audit")

    # --- health, init, leader, keys -----------------------------------------------------------
    r = s.read_health_status()
    assert isinstance(r, requests.Response) and r.status_code == 200 and r.text == "", r
    h = s.read_health_status(method="GET")
    assert h["initialized"] is True and h["sealed"] is False and h["standby"] is False, h
    for k, typ in [("performance_standby", bool), ("replication_performance_mode", str),
                   ("replication_dr_mode", str), ("server_time_utc", int), ("version", str),
                   ("cluster_name", str), ("cluster_id", str)]:
        assert isinstance(h[k], typ), (k, h)
    r = s.read_health_status(method="GET", active_code=299, standby_ok=True)
    assert isinstance(r, requests.Response) and r.status_code == 299 and r.json()["sealed"] is False, r
    assert s.read_init_status() == {"initialized": True} and s.is_initialized() is True
    ld = s.read_leader_status()
    assert ld["ha_enabled"] is False and ld["is_self"] is False and ld["leader_address"] == "", ld
    assert "request_id" not in ld, "sys/leader is not a logical answer"
    ks = s.get_encryption_key_status()
    d = envelope(ks, "get_encryption_key_status")
    assert is_int(d["term"]) and isinstance(d["install_time"], str) and is_int(d["encryptions"]), d
    assert ks["term"] == d["term"], "sys/key-status copies data to the top level"
    no_content(s.rotate_encryption_key(), "rotate_encryption_key")
    assert s.get_encryption_key_status()["data"]["term"] == d["term"] + 1
    gr = s.read_root_generation_progress()
    assert gr["started"] is False and gr["progress"] == 0 and gr["required"] == 1 and gr["otp_length"] == 28, gr
    rk = s.read_rekey_progress()
    assert rk["started"] is False and rk["nonce"] == "" and rk["required"] == 1, rk
    raises(exceptions.InvalidRequest, lambda: s.read_backup_keys(), "no backed-up keys found")
    raises(exceptions.InvalidRequest, lambda: s.read_rekey_verify_progress(), "no rekey configuration found")
    step("health/init/leader/key")

    # --- namespaces and raft: Vault's answers on a server without them ------------------------
    for fn in (lambda: s.list_namespaces(), lambda: s.create_namespace("team"), lambda: s.delete_namespace("team")):
        raises(exceptions.InvalidPath, fn, "unsupported path")
    for fn in (lambda: s.read_raft_config(), lambda: s.remove_raft_node("node-2"),
               lambda: s.join_raft_cluster("http://127.0.0.1:1")):
        raises(exceptions.InvalidRequest, fn, "raft storage is not in use")
    code, body = raw("GET", "sys/storage/raft/configuration", os.environ["VAULT_TOKEN"])
    assert (code, body) == (400, {"errors": ["raft storage is not in use"]}), (code, body)
    code, body = raw("GET", "sys/storage/raft/configuration", None)
    assert code == 403, "the raft paths still need a token"
    step("namespaces/raft")

    # --- quotas -------------------------------------------------------------------------------
    no_content(s.enable_secrets_engine("kv", path="test"), "enable kv")
    no_content(s.create_or_update_quota("test-quota", 101, path="test/*", interval="600", block_interval="600"),
               "create_or_update_quota")
    no_content(s.create_or_update_quota("test-quota", 100, path="test/*", interval="600", block_interval="600"),
               "update quota")
    d = envelope(s.read_quota("test-quota"), "read_quota")
    assert d == {"block_interval": 600, "interval": 600, "name": "test-quota", "path": "test/*", "rate": 100,
                 "role": "", "type": "rate-limit", "inheritable": False}, d
    assert is_int(d["interval"]) and is_int(d["block_interval"]), d
    assert envelope(s.list_quotas(), "list_quotas")["keys"] == ["test-quota"]
    raises(exceptions.InvalidRequest, lambda: s.create_or_update_quota("test-invalid-path", 101, path="/not-exist"))
    no_content(s.delete_quota("test-quota"), "delete_quota")
    raises(exceptions.InvalidPath, lambda: s.read_quota("test-quota"))
    raises(exceptions.InvalidPath, lambda: s.list_quotas())
    step("quotas")

    # --- wrapping -----------------------------------------------------------------------------
    w = s.wrap({"x": 1, "y": "z"}, ttl=120)
    assert w["auth"] is None and w["data"] is None, w
    info = w["wrap_info"]
    assert info["ttl"] == 120 and info["creation_path"] == "sys/wrapping/wrap", info
    assert isinstance(info["token"], str) and isinstance(info["accessor"], str), info
    u = s.unwrap(info["token"])
    assert u["data"] == {"x": 1, "y": "z"}, u
    assert u["warnings"] is None, f"unwrapping arbitrary data must not warn: {u}"
    raises(exceptions.InvalidRequest, lambda: s.unwrap(info["token"]), "wrapping token is not valid")
    # Without an argument, hvac unwraps the token the client itself holds.
    holder = hvac.Client(url=ADDR, token=s.wrap({"k": "v"})["wrap_info"]["token"], timeout=20)
    assert holder.sys.unwrap()["data"] == {"k": "v"}
    raises((exceptions.InvalidRequest, exceptions.Forbidden), lambda: holder.sys.unwrap())
    wt = c.auth.token.create(period="30m", wrap_ttl="15m")
    assert wt["auth"] is None and wt["wrap_info"]["ttl"] == 900, wt
    tok = s.unwrap(wt["wrap_info"]["token"])["auth"]
    assert tok["lease_duration"] == 1800 and tok["client_token"], tok
    assert c.auth.token.lookup(tok["client_token"])["data"]["period"] == 1800
    step("wrap/unwrap")

    # --- leases (a PKI role with generate_lease) ----------------------------------------------
    no_content(s.enable_secrets_engine("pki", path="pki"), "enable pki")
    no_content(s.tune_mount_configuration("pki", max_lease_ttl="87600h"), "tune pki")
    c.write("pki/root/generate/internal", common_name="hvac.com", ttl="8760h", key_type="ec")
    c.write("pki/roles/my-role", allowed_domains="hvac.com", allow_subdomains=True, generate_lease=True,
            max_ttl="72h", key_type="ec")
    issued = c.write("pki/issue/my-role", common_name="test.hvac.com", ttl="1h")
    lease = issued["lease_id"]
    assert lease.startswith("pki/issue/my-role/") and issued["lease_duration"] == 3600, issued
    d = envelope(s.read_lease(lease), "read_lease")
    assert d["id"] == lease and d["renewable"] is False and d["last_renewal"] is None, d
    assert is_int(d["ttl"]) and 3500 < d["ttl"] <= 3600, d
    assert isinstance(d["issue_time"], str) and isinstance(d["expire_time"], str), d
    assert envelope(s.list_leases("pki"), "list_leases")["keys"] == ["issue/"]
    assert s.list_leases("pki/issue/my-role")["data"]["keys"] == [lease.rsplit("/", 1)[1]]
    # PKI leases are not renewable, in Vault as here.
    raises(exceptions.InvalidRequest, lambda: s.renew_lease(lease, increment=600), "not renewable")
    no_content(s.revoke_lease(lease), "revoke_lease")
    raises(exceptions.InvalidPath, lambda: s.list_leases("pki"))
    raises(exceptions.InvalidRequest, lambda: s.read_lease(lease), "invalid lease")
    second = c.write("pki/issue/my-role", common_name="a.hvac.com", ttl="1h")["lease_id"]
    no_content(s.revoke_prefix(second), "revoke_prefix")
    third = c.write("pki/issue/my-role", common_name="b.hvac.com", ttl="1h")["lease_id"]
    no_content(s.revoke_force(third), "revoke_force")
    raises(exceptions.InvalidPath, lambda: s.list_leases("pki"))
    tidy = c.adapter.post("/v1/sys/leases/tidy")
    assert isinstance(tidy, requests.Response) and tidy.status_code == 202, tidy
    assert "Tidy operation successfully started" in tidy.json()["warnings"][0], tidy.text
    step("leases")

    # --- KV version 1 -------------------------------------------------------------------------
    kv1 = c.secrets.kv.v1
    no_content(s.enable_secrets_engine("kv", path="kvv1", options={"version": "1"}), "enable kv v1")
    raises(exceptions.InvalidPath, lambda: kv1.read_secret("no-secret-here", mount_point="kvv1"))
    no_content(kv1.create_or_update_secret("hvac/top-secret", {"pssst": "hi"}, mount_point="kvv1"), "kv1 create")
    no_content(kv1.create_or_update_secret("hvac/top-secret", {"pssst": "hi", "n": 2}, mount_point="kvv1"), "kv1 update")
    no_content(kv1.create_or_update_secret("hvac/posted", {"a": "b"}, method="POST", mount_point="kvv1"), "kv1 POST")
    no_content(kv1.create_or_update_secret("hvac/posted", {"a": "c"}, method="PUT", mount_point="kvv1"), "kv1 PUT")
    r = kv1.read_secret("hvac/top-secret", mount_point="kvv1")
    assert envelope(r, "kv1 read") == {"pssst": "hi", "n": 2}, r
    assert r["lease_id"] == "" and r["lease_duration"] == 2764800 and r["renewable"] is False, r
    no_content(kv1.create_or_update_secret("hvac/ttl", {"v": "1", "ttl": "1h"}, mount_point="kvv1"), "kv1 ttl")
    r = kv1.read_secret("hvac/ttl", mount_point="kvv1")
    assert r["lease_duration"] == 3600 and r["data"] == {"v": "1", "ttl": "1h"}, r
    assert envelope(kv1.list_secrets("hvac", mount_point="kvv1"), "kv1 list") == {
        "keys": ["posted", "top-secret", "ttl"]}
    assert kv1.list_secrets("", mount_point="kvv1")["data"] == {"keys": ["hvac/"]}
    raises(exceptions.InvalidPath, lambda: kv1.list_secrets("nothing", mount_point="kvv1"))
    for name in ("top-secret", "posted", "ttl", "no-secret-here"):
        no_content(kv1.delete_secret(f"hvac/{name}", mount_point="kvv1"), "kv1 delete")
    raises(exceptions.InvalidPath, lambda: kv1.read_secret("hvac/top-secret", mount_point="kvv1"))
    raises(exceptions.InvalidPath, lambda: kv1.list_secrets("hvac", mount_point="kvv1"))
    step("kv v1")


# ---------------------------------------------------------------------------------------------
def part_auth():
    root = os.environ["VAULT_TOKEN"]
    c = hvac.Client(url=ADDR, token=root, timeout=20)
    tk = c.auth.token

    # --- tokens -------------------------------------------------------------------------------
    c.sys.create_or_update_policy("testpolicy", 'path "secret/data/hvac" { capabilities = ["read"] }')
    c.sys.create_or_update_policy("child-maker", 'path "auth/token/create" { capabilities = ["update"] }')
    r = tk.create(policies=["testpolicy"], ttl="1h", meta={"app": "hvac"}, display_name="mine", num_uses=0)
    a = r["auth"]
    assert r["data"] is None and r["lease_id"] == "" and r["wrap_info"] is None, r
    assert a["policies"] == ["default", "testpolicy"] and a["token_policies"] == ["default", "testpolicy"], a
    assert a["metadata"] == {"app": "hvac"} and a["lease_duration"] == 3600 and a["renewable"] is True, a
    assert a["token_type"] == "service" and a["orphan"] is False and a["entity_id"] == "", a
    assert a["client_token"].startswith("hvs.") and isinstance(a["accessor"], str) and a["accessor"], a
    token, accessor = a["client_token"], a["accessor"]
    look = tk.lookup(token)
    d = envelope(look, "lookup")
    assert d["id"] == token and d["accessor"] == accessor and d["display_name"] == "token-mine", d
    assert d["policies"] == ["default", "testpolicy"] and d["meta"] == {"app": "hvac"}, d
    assert d["path"] == "auth/token/create" and d["type"] == "service" and d["orphan"] is False, d
    for k in ("creation_time", "creation_ttl", "ttl", "explicit_max_ttl", "num_uses"):
        assert is_int(d[k]), (k, d)
    assert d["creation_ttl"] == 3600 and 3590 <= d["ttl"] <= 3600, d
    assert isinstance(d["expire_time"], str) and isinstance(d["issue_time"], str) and d["renewable"] is True, d
    assert "request_id" in look and "policies" not in look, "token lookup does not copy data to the top level"
    by_acc = tk.lookup_accessor(accessor)["data"]
    assert by_acc["accessor"] == accessor and by_acc["id"] == "" and by_acc["policies"] == d["policies"], by_acc
    me = tk.lookup_self()["data"]
    assert me["id"] == root and me["policies"] == ["root"] and me["expire_time"] is None and me["ttl"] == 0, me
    assert accessor in envelope(tk.list_accessors(), "list_accessors")["keys"]
    ren = tk.renew(token, increment="2h")["auth"]
    assert ren["client_token"] == token and ren["lease_duration"] == 7200, ren
    d = tk.lookup(token)["data"]
    assert is_int(d["last_renewal_time"]) and isinstance(d["last_renewal"], str), d
    assert tk.renew_accessor(accessor, increment=600)["auth"]["lease_duration"] == 600
    step("create/lookup/lookup_self/lookup_accessor/renew/renew_accessor")

    c2 = hvac.Client(url=ADDR, token=token, timeout=20)
    me = c2.auth.token.lookup_self()["data"]
    assert me["id"] == token, me
    rs = c2.auth.token.renew_self(increment="30m")["auth"]
    assert rs["client_token"] == token and rs["lease_duration"] == 1800, rs
    no_content(c2.auth.token.revoke_self(), "revoke_self")
    assert not c2.is_authenticated()
    e = raises(exceptions.Forbidden, lambda: tk.lookup(token), "bad token")
    raises(exceptions.InvalidRequest, lambda: tk.lookup_accessor(accessor), "invalid accessor")
    step("renew_self/revoke_self")

    orphan = tk.create_orphan(policies=["testpolicy"], ttl="30m")["auth"]
    assert orphan["orphan"] is True and orphan["lease_duration"] == 1800, orphan
    assert tk.lookup(orphan["client_token"])["data"]["path"] == "auth/token/create-orphan"
    custom = tk.create(id="hvac-custom-id", policies=["testpolicy"], ttl="1h")["auth"]
    assert custom["client_token"] == "hvac-custom-id", custom
    batch = tk.create(policies=["testpolicy"], ttl="1h", type="batch", renewable=False)["auth"]
    assert batch["token_type"] == "batch" and batch["accessor"] == "" and batch["renewable"] is False, batch
    capped = tk.create(ttl="30m", explicit_max_ttl="5m")["auth"]
    assert capped["lease_duration"] == 300, capped
    periodic = tk.create(period="30m")["auth"]
    assert periodic["lease_duration"] == 1800 and tk.lookup(periodic["client_token"])["data"]["period"] == 1800
    step("create_orphan/create variants")

    parent = tk.create(policies=["child-maker"], ttl="1h")["auth"]["client_token"]
    child = hvac.Client(url=ADDR, token=parent, timeout=20).auth.token.create(ttl="1h")["auth"]
    assert child["policies"] == ["child-maker", "default"], child
    no_content(tk.revoke_and_orphan_children(parent), "revoke_and_orphan_children")
    assert tk.lookup(child["client_token"])["data"]["orphan"] is True
    no_content(tk.revoke_accessor(child["accessor"]), "revoke_accessor")
    raises(exceptions.Forbidden, lambda: tk.lookup(child["client_token"]))
    parent = tk.create(policies=["child-maker"], ttl="1h")["auth"]["client_token"]
    child = hvac.Client(url=ADDR, token=parent, timeout=20).auth.token.create(ttl="1h")["auth"]["client_token"]
    no_content(tk.revoke(parent), "revoke")
    raises(exceptions.Forbidden, lambda: tk.lookup(child), "bad token")
    no_content(tk.revoke("hvs.not-a-token"), "revoke of an unknown token")
    step("revoke/revoke_accessor/revoke_and_orphan_children")

    raises(exceptions.InvalidPath, lambda: tk.list_roles())
    r = tk.create_or_update_role("testrole", allowed_policies="testpolicy", disallowed_policies=["root"],
                                 orphan=True, renewable=True, path_suffix="v1", token_period="1h",
                                 token_explicit_max_ttl="24h")
    no_content(r, "create_or_update_role")
    d = envelope(tk.read_role("testrole"), "read_role")
    assert d["name"] == "testrole" and d["allowed_policies"] == ["testpolicy"], d
    assert d["disallowed_policies"] == ["root"] and d["orphan"] is True and d["renewable"] is True, d
    assert d["path_suffix"] == "v1" and d["token_period"] == 3600 and d["period"] == 3600, d
    assert d["token_explicit_max_ttl"] == 86400 and d["explicit_max_ttl"] == 86400, d
    assert d["token_type"] == "default-service" and d["allowed_policies_glob"] == [], d
    assert envelope(tk.list_roles(), "list_roles")["keys"] == ["testrole"]
    t = tk.create(ttl="1h", role_name="testrole")["auth"]
    assert t["policies"] == ["default", "testpolicy"] and t["orphan"] is True and t["lease_duration"] == 3600, t
    d = tk.lookup(t["client_token"])["data"]
    assert d["role"] == "testrole" and d["path"] == "auth/token/create/testrole/v1" and d["period"] == 3600, d
    raises(exceptions.InvalidRequest, lambda: tk.create(role_name="testrole", policies=["root"]))
    raises(exceptions.InvalidRequest, lambda: tk.create_or_update_role("badrole", token_period="forever"),
           "token_period")
    raises(exceptions.InvalidPath, lambda: tk.read_role("badrole"))
    no_content(tk.delete_role("testrole"), "delete_role")
    raises(exceptions.InvalidPath, lambda: tk.read_role("testrole"))
    raises(exceptions.InvalidPath, lambda: tk.list_roles())
    # Vault answers a started tidy with 202 Accepted and a warning saying so; hvac hands back
    # the response itself for anything but a 200.
    tidy = tk.tidy()
    assert isinstance(tidy, requests.Response) and tidy.status_code == 202, tidy
    body = tidy.json()
    assert ENVELOPE <= set(body) and body["data"] is None, body
    assert "Tidy operation successfully started" in body["warnings"][0], body
    step("roles/tidy")

    # --- userpass -----------------------------------------------------------------------------
    up = c.auth.userpass
    no_content(c.sys.enable_auth_method("userpass"), "enable userpass")
    raises(exceptions.InvalidPath, lambda: up.list_user())
    no_content(up.create_or_update_user("readme", "mypassword", policies="not_root"), "create_or_update_user")
    d = envelope(up.read_user("readme"), "read_user")
    assert "not_root" in d["policies"] and d["token_policies"] == ["not_root"], d
    assert "password" not in json.dumps(d), d
    for k in ("token_ttl", "token_max_ttl", "token_explicit_max_ttl", "token_num_uses", "token_period"):
        assert d[k] == 0, (k, d)
    assert d["token_bound_cidrs"] == [] and d["token_no_default_policy"] is False and d["token_type"] == "default", d
    no_content(up.create_or_update_user("readme", policies="somethingelse"), "update policies only")
    assert "somethingelse" in up.read_user("readme")["data"]["policies"]
    no_content(up.create_or_update_user("second", "pw-two", policies=["a", "b"], token_ttl="10m"), "kwargs")
    d = up.read_user("second")["data"]
    assert d["token_ttl"] == 600 and d["token_policies"] == ["a", "b"], d
    assert envelope(up.list_user(), "list_user")["keys"] == ["readme", "second"]
    raises(exceptions.InvalidRequest, lambda: up.create_or_update_user("nopassword", policies="x"), "password")
    raises(exceptions.InvalidPath, lambda: up.read_user("nopassword"))
    lc = hvac.Client(url=ADDR, timeout=20)
    login = lc.auth.userpass.login("readme", "mypassword")
    a = login["auth"]
    assert lc.token == a["client_token"] and lc.is_authenticated(), login
    assert a["policies"] == ["default", "somethingelse"] and a["metadata"] == {"username": "readme"}, a
    assert a["lease_duration"] == 2764800 and a["renewable"] is True and a["orphan"] is True, a
    assert lc.auth.token.lookup_self()["data"]["path"] == "auth/userpass/login/readme"
    no_content(up.update_password_on_user("readme", "mynewpassword"), "update_password_on_user")
    raises(exceptions.InvalidRequest, lambda: hvac.Client(url=ADDR).auth.userpass.login("readme", "mypassword"),
           "invalid username or password")
    assert hvac.Client(url=ADDR).auth.userpass.login("readme", "mynewpassword")["auth"]["client_token"]
    # hvac's own test: a legacy ttl shapes the next login's lease.
    no_content(up.create_or_update_user("readme", "mynewpassword", policies="not_root", ttl="10s"), "ttl")
    assert hvac.Client(url=ADDR).auth.userpass.login("readme", "mynewpassword")["auth"]["lease_duration"] == 10
    assert up.read_user("readme")["data"]["ttl"] == 10
    no_content(up.delete_user("readme"), "delete_user")
    raises(exceptions.InvalidPath, lambda: up.read_user("readme"))
    raises(exceptions.InvalidRequest, lambda: hvac.Client(url=ADDR).auth.userpass.login("readme", "mynewpassword"))
    no_content(up.delete_user("second"), "delete_user")
    raises(exceptions.InvalidPath, lambda: up.list_user())
    step("userpass")

    # --- cert roles (the login is in the lifecycle part, over TLS) ----------------------------
    ca = open(os.path.join(WORK, "client-ca.pem")).read()
    cert = c.auth.cert
    no_content(c.sys.enable_auth_method("cert", path="cert-test"), "enable cert")
    no_content(cert.create_ca_certificate_role("testrole", certificate=ca, mount_point="cert-test"),
               "create_ca_certificate_role")
    # hvac sends the role's name as a query parameter too: as OpenBao 2.7.2 does, the answer
    # warns that the path's value replaced it.
    r = cert.read_ca_certificate_role("testrole", mount_point="cert-test")
    assert r["warnings"] == ["Endpoint replaced the value of these parameters with the values "
                             "captured from the endpoint's path: [name]"], r
    r["warnings"] = None
    d = envelope(r, "read_ca_certificate_role")
    assert d["display_name"] == "testrole" and d["certificate"].strip() == ca.strip(), d
    assert d["allowed_common_names"] == [] and d["token_policies"] == [] and d["token_ttl"] == 0, d
    assert d["token_type"] == "default", d
    no_content(
        cert.create_ca_certificate_role(
            "web", certificate=ca, allowed_common_names="web.hvac.com", token_policies=["testpolicy"],
            token_ttl=600, token_max_ttl=1200, display_name="web-clients", mount_point="cert-test"),
        "create_ca_certificate_role with settings",
    )
    d = cert.read_ca_certificate_role("web", mount_point="cert-test")["data"]
    assert d["allowed_common_names"] == ["web.hvac.com"] and d["display_name"] == "web-clients", d
    assert (d["token_ttl"], d["token_max_ttl"], d["token_policies"]) == (600, 1200, ["testpolicy"]), d
    assert envelope(cert.list_certificate_roles(mount_point="cert-test"), "list_certificate_roles")["keys"] == [
        "testrole", "web"]
    raises(exceptions.InvalidRequest, lambda: cert.create_ca_certificate_role(
        "broken", certificate="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", mount_point="cert-test"))
    raises(exceptions.InvalidPath, lambda: cert.read_ca_certificate_role("broken", mount_point="cert-test"))
    no_content(cert.configure_tls_certificate(mount_point="cert-test"), "configure_tls_certificate")
    assert c.read("auth/cert-test/config")["data"]["disable_binding"] is False
    no_content(cert.configure_tls_certificate(mount_point="cert-test", disable_binding=True), "disable_binding")
    assert c.read("auth/cert-test/config")["data"]["disable_binding"] is True
    no_content(cert.delete_certificate_role("web", mount_point="cert-test"), "delete_certificate_role")
    raises(exceptions.InvalidPath, lambda: cert.read_ca_certificate_role("web", mount_point="cert-test"))
    assert cert.list_certificate_roles(mount_point="cert-test")["data"]["keys"] == ["testrole"]
    step("cert roles")


# ---------------------------------------------------------------------------------------------
def part_lifecycle():
    cacert = os.environ["VAULT_CACERT"]
    c = hvac.Client(url=ADDR, verify=cacert, timeout=20)
    s = c.sys

    assert s.read_init_status() == {"initialized": False} and s.is_initialized() is False
    st = s.read_seal_status()
    assert st["initialized"] is False and st["sealed"] is True and st["type"] == "shamir", st
    r = s.read_health_status(method="GET")
    assert isinstance(r, requests.Response) and r.status_code == 501 and r.json()["initialized"] is False, r
    assert s.read_health_status(method="GET", uninit_code=299).status_code == 299
    raises(exceptions.InvalidRequest, lambda: s.initialize(secret_shares=2, secret_threshold=3))
    init = s.initialize(secret_shares=5, secret_threshold=3)
    assert set(init) >= {"keys", "keys_base64", "root_token"}, init
    assert len(init["keys"]) == 5 and len(init["keys_base64"]) == 5, init
    for hexkey, b64 in zip(init["keys"], init["keys_base64"]):
        assert bytes.fromhex(hexkey) == base64.b64decode(b64), (hexkey, b64)
    keys, root = init["keys"], init["root_token"]
    assert s.is_initialized() is True
    raises(exceptions.InvalidRequest, lambda: s.initialize(secret_shares=1, secret_threshold=1), "already initialized")
    step("initialize")

    st = s.read_seal_status()
    assert (st["sealed"], st["t"], st["n"], st["progress"]) == (True, 3, 5, 0), st
    r = s.read_health_status()
    assert isinstance(r, requests.Response) and r.status_code == 503, r
    r = s.read_health_status(method="GET", sealed_code=298)
    assert r.status_code == 298 and r.json()["sealed"] is True, r
    r = s.submit_unseal_keys(keys[0:2])
    assert r["sealed"] is True and r["progress"] == 2 and isinstance(r["nonce"], str) and r["nonce"], r
    r = s.submit_unseal_key(reset=True)
    assert r["progress"] == 0 and r["sealed"] is True, r
    raises(exceptions.InvalidRequest, lambda: s.submit_unseal_key("AAAA"))
    assert s.read_seal_status()["progress"] == 0, "a bad key leaves no progress"
    r = s.submit_unseal_keys(keys[1:3])
    assert r["sealed"] is True and r["progress"] == 2, r
    r = s.submit_unseal_keys([init["keys_base64"][0]])
    assert r["sealed"] is False and r["progress"] == 0 and isinstance(r["cluster_id"], str), r
    assert s.is_sealed() is False
    step("submit_unseal_key(s)/read_seal_status")

    c.token = root
    no_content(s.seal(), "seal")
    assert s.is_sealed() is True
    raises(exceptions.VaultDown, lambda: c.auth.token.lookup_self())
    r = s.submit_unseal_keys(keys)
    assert r["sealed"] is False, r
    assert c.auth.token.lookup_self()["data"]["id"] == root
    step("seal/unseal")

    gr = s.read_root_generation_progress()
    assert gr["started"] is False and gr["required"] == 3, gr
    raises(exceptions.InvalidRequest, lambda: s.start_root_token_generation(otp="short"))
    start = s.start_root_token_generation()
    assert start["started"] is True and len(start["otp"]) == start["otp_length"] == 28, start
    assert s.read_root_generation_progress()["started"] is True
    no_content(s.cancel_root_generation(), "cancel_root_generation")
    assert s.read_root_generation_progress()["started"] is False
    start = s.start_root_token_generation()
    last = None
    for k in keys[0:3]:
        last = s.generate_root(key=k, nonce=start["nonce"])
    assert last["complete"] is True and last["progress"] == 3 and last["encoded_root_token"], last
    enc = last["encoded_root_token"]
    raw_token = base64.b64decode(enc + "=" * (-len(enc) % 4))
    new_root = bytes(a ^ b for a, b in zip(raw_token, start["otp"].encode())).decode()
    nc = hvac.Client(url=ADDR, verify=cacert, token=new_root)
    assert nc.is_authenticated() and nc.auth.token.lookup_self()["data"]["policies"] == ["root"]
    assert s.read_root_generation_progress()["started"] is False
    step("generate_root")

    assert s.read_rekey_progress()["started"] is False
    started = s.start_rekey()
    assert started["started"] is True and (started["t"], started["n"]) == (3, 5) and started["nonce"], started
    assert s.read_rekey_progress()["nonce"] == started["nonce"]
    no_content(s.cancel_rekey(), "cancel_rekey")
    assert s.read_rekey_progress()["started"] is False
    started = s.start_rekey(secret_shares=3, secret_threshold=2, require_verification=True)
    assert started["verification_required"] is True, started
    done = s.rekey_multi(keys, nonce=started["nonce"])
    assert done["complete"] is True and len(done["keys"]) == 3 and done["verification_required"] is True, done
    vn = done["verification_nonce"]
    vp = s.read_rekey_verify_progress()
    assert vp["nonce"] == vn and vp["started"] is True and (vp["t"], vp["n"]) == (2, 3), vp
    # Cancelling the verification answers like its read, with a new nonce (Vault's docs).
    cancelled = s.cancel_rekey_verify()
    vn = cancelled["nonce"]
    assert vn and vn != done["verification_nonce"] and cancelled["progress"] == 0, cancelled
    assert s.read_rekey_verify_progress()["nonce"] == vn
    vr = s.rekey_verify_multi(done["keys"], nonce=vn)
    assert vr["complete"] is True and vr["nonce"] == vn, vr
    raises(exceptions.InvalidRequest, lambda: s.read_backup_keys(), "no backed-up keys found")
    no_content(s.seal(), "seal")
    # The old shares no longer combine into the root key: the threshold-th share is refused.
    r = s.submit_unseal_keys(keys[0:1])
    assert r["sealed"] is True and r["progress"] == 1 and r["t"] == 2, r
    raises(exceptions.InvalidRequest, lambda: s.submit_unseal_key(keys[1]), "invalid key")
    assert s.read_seal_status()["progress"] == 0
    r = s.submit_unseal_keys(done["keys"])
    assert r["sealed"] is False and (r["t"], r["n"]) == (2, 3), r
    step("rekey/rekey_verify")

    # A rekey to a PGP key, with a backup: the new share comes back encrypted, the backup holds
    # the same ciphertext under the key's fingerprint, and the decrypted share unseals.
    pub = os.environ["PGP_KEY_B64"]
    started = s.start_rekey(secret_shares=1, secret_threshold=1, pgp_keys=[pub], backup=True)
    assert started["backup"] is True and len(started["pgp_fingerprints"]) == 1, started
    fingerprint = started["pgp_fingerprints"][0]
    done2 = s.rekey_multi(done["keys"], nonce=started["nonce"])
    assert done2["complete"] is True and done2["backup"] is True, done2
    assert done2["pgp_fingerprints"] == [fingerprint] and len(done2["keys"]) == 1, done2
    backup = s.read_backup_keys()
    d = envelope(backup, "read_backup_keys")
    assert d["nonce"] == started["nonce"], d
    assert d["keys"] == {fingerprint: done2["keys"]}, d
    assert d["keys_base64"] == {fingerprint: done2["keys_base64"]}, d
    assert backup["keys"] == d["keys"], "sys/rekey/backup copies data to the top level"
    plain = subprocess.run(
        ["gpg", "--batch", "--quiet", "--decrypt"],
        input=bytes.fromhex(done2["keys"][0]),
        capture_output=True,
        timeout=30,
        env={**os.environ, "GNUPGHOME": os.environ["GNUPGHOME"]},
    )
    assert plain.returncode == 0, plain.stderr
    share = plain.stdout.decode().strip()
    no_content(s.seal(), "seal")
    r = s.submit_unseal_key(share)
    assert r["sealed"] is False and (r["t"], r["n"]) == (1, 1), r
    step("rekey with pgp_keys/read_backup_keys")

    no_content(s.step_down(), "step_down")
    assert c.is_authenticated()
    step("step_down")

    # --- cert login over the TLS listener -----------------------------------------------------
    ca = open(os.environ["CLIENT_CA"]).read()
    s.enable_auth_method("cert")
    c.sys.create_or_update_policy("web", 'path "secret/*" { capabilities = ["read"] }')
    no_content(c.auth.cert.create_ca_certificate_role("web", certificate=ca, token_policies=["web"], token_ttl=600),
               "role")
    lc = hvac.Client(url=ADDR, verify=cacert, timeout=20)
    r = lc.auth.cert.login(name="web", cert_pem=os.environ["CLIENT_CERT"], key_pem=os.environ["CLIENT_KEY"])
    a = r["auth"]
    assert lc.token == a["client_token"] and lc.is_authenticated(), r
    assert a["policies"] == ["default", "web"] and a["lease_duration"] == 600, a
    assert a["metadata"]["cert_name"] == "web" and a["metadata"]["common_name"] == "hvac client", a
    lc2 = hvac.Client(url=ADDR, verify=cacert, timeout=20)
    assert lc2.auth.cert.login(cert_pem=os.environ["CLIENT_CERT"], key_pem=os.environ["CLIENT_KEY"])["auth"][
        "client_token"], "no name: any matching role"
    raises(exceptions.InvalidRequest, lambda: hvac.Client(url=ADDR, verify=cacert).auth.cert.login(
        name="nope", cert_pem=os.environ["CLIENT_CERT"], key_pem=os.environ["CLIENT_KEY"]))
    step("cert login")


{"sys": part_sys, "auth": part_auth, "lifecycle": part_lifecycle}[PART]()
print("ALL OK", flush=True)
