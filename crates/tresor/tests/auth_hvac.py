"""hvac's federated-login auth methods against a running Tresor (driven by tests/auth_hvac.rs).

Environment: VAULT_ADDR, VAULT_TOKEN, FAMILY (ldap, jwt or kubernetes); for ldap also
LDAP_PORT, LDAP_CA (the slapd started by the Rust test, its CA file) and LDAP_BASE.

Every call goes through hvac's public API as a user's script would, with hvac's defaults
(the `path`/`mount_point` of each method defaults to the method's name); each answer is
checked against Vault's documented behaviour: the JSON envelope, field names and types (TTLs
as integers of seconds, lists as lists, `keys` for LISTs), the defaults a read shows, 404s
for what does not exist and 400s naming the bad field. Everything the server talks to runs
on 127.0.0.1: a real slapd, JWTs signed here with keys made here, Tresor's own identity OIDC
issuer, and a TokenReview endpoint served by this script (no real Kubernetes API server is
exercised). Prints "OK <step>" lines and exits non-zero on the first failure.
"""

import datetime
import http.server
import json
import os
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse

import hvac
import jwt as pyjwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hvac import exceptions

ADDR = os.environ["VAULT_ADDR"]
ROOT = os.environ["VAULT_TOKEN"]
client = hvac.Client(url=ADDR, token=ROOT, timeout=30)


def step(name):
    print("OK", name, flush=True)


def expect(exc, fn, *args, contains=None, **kwargs):
    """Calls fn and requires hvac to raise `exc` (with `contains` in its message)."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        if contains is not None:
            assert contains in str(e), f"{exc.__name__} without {contains!r}: {e}"
        return e
    raise AssertionError(f"{getattr(fn, '__name__', fn)} did not raise {exc.__name__}")


def is_204(resp):
    """hvac hands back the requests.Response of a 204 (a dict for a 200 with a body)."""
    return getattr(resp, "status_code", None) == 204


def as_root():
    client.token = ROOT


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem_private(k):
    return k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def pem_public(k):
    return (
        k.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def certificate(key, cn, issuer_key=None, issuer_cert=None, ca=False, san_ip=False):
    """A certificate for `key`, self-signed unless an issuer is given."""
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san_ip:
        import ipaddress

        b = b.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return b.sign(issuer_key or key, hashes.SHA256())


def pem_cert(c):
    return c.public_bytes(serialization.Encoding.PEM).decode()


def lookup_self():
    return client.auth.token.lookup_self()["data"]


# --------------------------------------------------------------------------------------------
# LDAP
# --------------------------------------------------------------------------------------------

LDAP_DEFAULTS = {
    "url": "ldap://127.0.0.1",
    "userdn": "",
    "groupdn": "",
    "binddn": "",
    "upndomain": "",
    "userattr": "cn",
    "userfilter": "({{.UserAttr}}={{.Username}})",
    "groupattr": "cn",
    "groupfilter": "(|(memberUid={{.Username}})(member={{.UserDN}})(uniqueMember={{.UserDN}}))",
    "certificate": "",
    "insecure_tls": False,
    "starttls": False,
    "tls_min_version": "tls12",
    "tls_max_version": "tls12",
    "deny_null_bind": True,
    "discoverdn": False,
    "case_sensitive_names": False,
    "username_as_alias": False,
    "anonymous_group_search": False,
    "use_token_groups": False,
    "enable_samaccountname_login": False,
    "request_timeout": 90,
    "connection_timeout": 30,
    "dereference_aliases": "never",
    "max_page_size": 0,
    "token_ttl": 0,
    "token_max_ttl": 0,
    "token_explicit_max_ttl": 0,
    "token_period": 0,
    "token_num_uses": 0,
    "token_no_default_policy": False,
    "token_policies": [],
    "token_bound_cidrs": [],
    "token_type": "default",
}


def check_fields(data, want, what):
    for k, v in want.items():
        assert k in data, f"{what}: {k} missing from {sorted(data)}"
        got = data[k]
        assert got == v and type(got) is type(v), f"{what}: {k} is {got!r}, want {v!r}"


def ldap():
    port = int(os.environ["LDAP_PORT"])
    base = os.environ["LDAP_BASE"]
    ca = open(os.environ["LDAP_CA"]).read()
    ldap = client.auth.ldap

    client.sys.enable_auth_method(method_type="ldap")
    assert "ldap/" in client.sys.list_auth_methods()["data"]

    # A fresh mount reads its defaults (Vault answers a config it has never stored).
    d = ldap.read_configuration()["data"]
    check_fields(d, LDAP_DEFAULTS, "defaults")
    assert "bindpass" not in d and "client_tls_key" not in d, d
    step("read_configuration shows the defaults")

    # configure with every argument hvac has, as one call.
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = pem_cert(certificate(client_key, "tresor-ldap-client"))
    args = dict(
        userdn=f"ou=users,{base}",
        groupdn=f"ou=groups,{base}",
        url=f"ldap://127.0.0.1:{port}",
        case_sensitive_names=False,
        starttls=True,
        tls_min_version="tls12",
        tls_max_version="tls13",
        insecure_tls=False,
        certificate=ca,
        binddn=f"cn=admin,{base}",
        bindpass="adminpw",
        userattr="uid",
        discoverdn=False,
        deny_null_bind=True,
        upndomain="",
        groupfilter="(member={{.UserDN}})",
        groupattr="cn",
        use_token_groups=False,
        token_ttl="1h",
        token_max_ttl="4h",
        anonymous_group_search=False,
        client_tls_cert=client_cert,
        client_tls_key=pem_private(client_key),
        connection_timeout="5s",
        dereference_aliases="always",
        max_page_size=100,
        request_timeout=20,
        token_bound_cidrs=["127.0.0.0/8"],
        token_explicit_max_ttl="3h",
        token_no_default_policy=False,
        token_num_uses=10,
        token_period="30m",
        token_policies=["ldap-base"],
        token_type="service",
        userfilter="(&(objectClass=inetOrgPerson)({{.UserAttr}}={{.Username}}))",
        username_as_alias=True,
    )
    resp = ldap.configure(**args)
    assert is_204(resp), resp
    d = ldap.read_configuration()["data"]
    want = dict(args)
    for k in ("bindpass", "client_tls_key", "client_tls_cert"):
        want.pop(k)
    want.update(
        token_ttl=3600,
        token_max_ttl=14400,
        token_explicit_max_ttl=10800,
        token_period=1800,
        connection_timeout=5,
        request_timeout=20,
    )
    check_fields(d, want, "configure")
    assert d["certificate"] == ca, "the CA certificate reads back exactly as sent"
    assert "bindpass" not in d and "client_tls_key" not in d, "secrets are never shown"
    assert "adminpw" not in json.dumps(d)
    step("configure with every argument/read_configuration")

    # The deprecated aliases hvac still takes, and a write that sends one field changes that
    # field only (hvac always sends deny_null_bind too).
    ldap.configure(upn_domain="example.org", bind_dn=f"cn=admin,{base}")
    d = ldap.read_configuration()["data"]
    assert d["upndomain"] == "example.org" and d["userattr"] == "uid", d
    assert d["token_period"] == 1800 and d["max_page_size"] == 100, d
    ldap.configure(upndomain="")
    step("configure updates only what it sends")

    # A bad value is a 400 naming the field (Vault's wording), and nothing changes.
    before = ldap.read_configuration()["data"]
    expect(exceptions.InvalidRequest, ldap.configure, url=args["url"], tls_min_version="cats",
           contains="invalid 'tls_min_version'")
    expect(exceptions.InvalidRequest, ldap.configure, tls_min_version="tls13", tls_max_version="tls12",
           contains="tls_max_version")
    expect(exceptions.InvalidRequest, ldap.configure, certificate="not a certificate",
           contains="certificate")
    assert ldap.read_configuration()["data"] == before
    # On a fresh mount, a client certificate needs its key and the other way round.
    client.sys.enable_auth_method(method_type="ldap", path="test-ldap")
    expect(exceptions.InvalidRequest, ldap.configure, client_tls_cert=client_cert, mount_point="test-ldap",
           contains="both client_tls_cert and client_tls_key must be set")
    expect(exceptions.InvalidRequest, ldap.configure, client_tls_key=pem_private(client_key),
           mount_point="test-ldap", contains="both client_tls_cert and client_tls_key must be set")
    assert ldap.read_configuration(mount_point="test-ldap")["data"]["url"] == "ldap://127.0.0.1"
    step("configure refuses bad values")

    # Every setting away from its default on that mount (the directory is not contacted):
    # each value reads back as sent, TTLs as integers of seconds.
    other = dict(
        url="ldap://ldap.python-hvac.org",
        userdn="dc=users,dc=hvac,dc=network",
        groupdn="ou=groups,dc=hvac,dc=network",
        anonymous_group_search=True,
        case_sensitive_names=True,
        connection_timeout=60,
        deny_null_bind=False,
        dereference_aliases="searching",
        discoverdn=True,
        groupfilter="(|(memberUid={{.Username}})(member={{.UserDN}}))",
        max_page_size=60,
        request_timeout="1m",
        starttls=True,
        tls_max_version="tls11",
        tls_min_version="tls11",
        token_bound_cidrs=["10.0.0.0"],
        token_explicit_max_ttl=60,
        token_max_ttl=60,
        token_no_default_policy=True,
        token_num_uses=10,
        token_period=10,
        token_policies=["foo"],
        token_ttl=60,
        token_type="service",
        upndomain="bar",
        userfilter="({{.UserAttr}}={{.Username}})",
        use_token_groups=True,
        username_as_alias=True,
    )
    assert is_204(ldap.configure(mount_point="test-ldap", **other))
    d = ldap.read_configuration(mount_point="test-ldap")["data"]
    check_fields(d, dict(other, request_timeout=60), "non-defaults")
    step("configure with non-defaults")

    # Groups.
    expect(exceptions.InvalidPath, ldap.list_groups)
    expect(exceptions.InvalidPath, ldap.read_group, name="devs")
    assert is_204(ldap.create_or_update_group(name="devs", policies=["dev-pol", "b-pol"]))
    assert is_204(ldap.create_or_update_group(name="extra", policies=["extra-pol"]))
    assert is_204(ldap.create_or_update_group(name="cats"))
    assert ldap.read_group(name="devs")["data"] == {"policies": ["b-pol", "dev-pol"]}
    assert ldap.read_group(name="cats")["data"]["policies"] == []
    expect(exceptions.ParamValidationError, ldap.create_or_update_group, name="x", policies="p")
    assert ldap.list_groups()["data"] == {"keys": ["cats", "devs", "extra"]}
    assert is_204(ldap.delete_group(name="cats"))
    assert is_204(ldap.delete_group(name="cats")), "deleting what is gone is a 204"
    expect(exceptions.InvalidPath, ldap.read_group, name="cats")
    assert ldap.list_groups()["data"]["keys"] == ["devs", "extra"]
    step("create_or_update_group/read_group/list_groups/delete_group")

    # Users.
    expect(exceptions.InvalidPath, ldap.list_users)
    expect(exceptions.InvalidPath, ldap.read_user, username="alice")
    assert is_204(ldap.create_or_update_user(username="alice", policies=["Alice-Pol", "a-pol"],
                                             groups=["extra", "Beta", "extra"]))
    assert is_204(ldap.create_or_update_user(username="cats"))
    u = ldap.read_user(username="alice")["data"]
    # Vault keeps names sorted, once each, in lower case (case_sensitive_names is off); the
    # groups read back as one comma-separated string.
    assert u == {"policies": ["a-pol", "alice-pol"], "groups": "beta,extra"}, u
    u = ldap.read_user(username="cats")["data"]
    assert u["policies"] == [] and u["groups"] == "", u
    assert ldap.list_users()["data"] == {"keys": ["alice", "cats"]}
    assert is_204(ldap.delete_user(username="cats"))
    assert is_204(ldap.delete_user(username="cats"))
    expect(exceptions.InvalidPath, ldap.read_user, username="cats")
    assert ldap.list_users()["data"]["keys"] == ["alice"]
    step("create_or_update_user/read_user/list_users/delete_user")

    # login against slapd, over StartTLS verified with the configured CA, with paged searches.
    r = ldap.login(username="alice", password="alicepw")
    auth = r["auth"]
    want = ["a-pol", "alice-pol", "b-pol", "default", "dev-pol", "extra-pol", "ldap-base"]
    assert auth["policies"] == want, auth
    assert auth["token_policies"] == want, auth
    assert auth["metadata"] == {"username": "alice"}, auth
    assert auth["lease_duration"] == 1800, "a periodic token's TTL is its period"
    assert auth["renewable"] is True, auth
    assert client.token == auth["client_token"], "hvac keeps the token it logged in with"
    me = lookup_self()
    assert me["meta"] == {"username": "alice"} and me["num_uses"] == 9, me
    assert me["period"] == 1800 and me["explicit_max_ttl"] == 10800, me
    assert me["type"] == "service" and me["path"] == "auth/ldap/login/alice", me
    as_root()
    # username_as_alias: the entity alias is the login name.
    acc = client.sys.list_auth_methods()["data"]["ldap/"]["accessor"]
    ent = client.secrets.identity.read_entity(entity_id=auth["entity_id"])["data"]
    assert [(a["name"], a["mount_accessor"]) for a in ent["aliases"]] == [("alice", acc)], ent
    # bob is in no group of this mount: he logs in with the configured policies only.
    auth = ldap.login(username="bob", password="bobpw", use_token=False)["auth"]
    assert auth["policies"] == ["default", "ldap-base"], auth
    assert client.token == ROOT, "use_token=False keeps the client's token"
    e = expect(exceptions.InvalidRequest, ldap.login, username="alice", password="wrong")
    assert client.token == ROOT
    expect(exceptions.InvalidRequest, ldap.login, username="mallory", password="alicepw")
    step("login")

    # The same calls on a mount of another name (hvac's mount_point).
    client.sys.enable_auth_method(method_type="ldap", path="corp-ldap")
    ldap.configure(
        url=f"ldap://127.0.0.1:{port}",
        user_dn=f"ou=users,{base}",
        user_attr="uid",
        group_dn=f"ou=groups,{base}",
        group_attr="cn",
        insecure_tls=True,
        mount_point="corp-ldap",
    )
    d = ldap.read_configuration(mount_point="corp-ldap")["data"]
    assert d["userdn"] == f"ou=users,{base}" and d["insecure_tls"] is True, d
    assert d["binddn"] == "" and d["token_policies"] == [], "the other mount's settings stay there"
    ldap.create_or_update_group(name="devs", policies=["corp-dev"], mount_point="corp-ldap")
    auth = ldap.login(username="alice", password="alicepw", use_token=False, mount_point="corp-ldap")["auth"]
    assert auth["policies"] == ["corp-dev", "default"], auth
    assert ldap.list_groups(mount_point="corp-ldap")["data"]["keys"] == ["devs"]
    step("mount_point")


# --------------------------------------------------------------------------------------------
# JWT / OIDC
# --------------------------------------------------------------------------------------------


def sign(key, claims, kid=None):
    return pyjwt.encode(claims, pem_private(key), algorithm="RS256", headers={"kid": kid} if kid else None)


def jwt_oidc():
    jwt_api = client.auth.jwt
    oidc_api = client.auth.oidc

    client.sys.enable_auth_method(method_type="jwt")
    client.sys.enable_auth_method(method_type="oidc")
    assert {"jwt/", "oidc/"} <= set(client.sys.list_auth_methods()["data"])
    expect(exceptions.InvalidPath, jwt_api.read_config)
    expect(exceptions.InvalidPath, jwt_api.list_roles)

    # A locally made key verifies JWTs signed here (jwt_validation_pubkeys).
    key, other = rsa_key(), rsa_key()
    pub = pem_public(key)
    resp = jwt_api.configure(
        jwt_validation_pubkeys=[pub],
        bound_issuer="https://ci.example",
        jwt_supported_algs=["RS256", "ES256"],
        default_role="ci",
    )
    assert is_204(resp), resp
    c = jwt_api.read_config()["data"]
    check_fields(
        c,
        {
            # A list field's items are trimmed, as Vault's comma-string-slice fields are.
            "jwt_validation_pubkeys": [pub.strip()],
            "bound_issuer": "https://ci.example",
            "jwt_supported_algs": ["RS256", "ES256"],
            "default_role": "ci",
            "oidc_discovery_url": "",
            "oidc_discovery_ca_pem": "",
            "oidc_client_id": "",
            "oidc_response_mode": "",
            "oidc_response_types": [],
            "jwks_url": "",
            "jwks_ca_pem": "",
            "namespace_in_state": True,
        },
        "jwt read_config",
    )
    assert "oidc_client_secret" not in c, c
    expect(exceptions.InvalidRequest, jwt_api.configure, jwt_validation_pubkeys=["not a key"],
           contains="jwt_validation_pubkeys")
    assert jwt_api.read_config()["data"]["jwt_validation_pubkeys"] == [pub.strip()], "a refused write changes nothing"
    step("jwt configure/read_config")

    redirect = f"{ADDR}/jwt/callback"
    resp = jwt_api.create_role(
        name="ci",
        user_claim="sub",
        allowed_redirect_uris=[redirect],
        role_type="jwt",
        bound_audiences=["tresor"],
        clock_skew_leeway=30,
        expiration_leeway=60,
        not_before_leeway="90s",
        bound_subject="builder-1",
        bound_claims={"team": ["a", "b"]},
        groups_claim="groups",
        claim_mappings={"email": "email"},
        oidc_scopes=["email"],
        bound_claims_type="string",
        verbose_oidc_logging=False,
        token_ttl="10m",
        token_max_ttl="1h",
        token_policies=["jwt-dev"],
        token_bound_cidrs=["127.0.0.0/8"],
        token_explicit_max_ttl="2h",
        token_no_default_policy=False,
        token_num_uses=0,
        token_period=None,
        token_type="service",
        user_claim_json_pointer=False,
    )
    assert is_204(resp), resp
    r = jwt_api.read_role(name="ci")["data"]
    check_fields(
        r,
        {
            "role_type": "jwt",
            "user_claim": "sub",
            "allowed_redirect_uris": [redirect],
            "bound_audiences": ["tresor"],
            "clock_skew_leeway": 30,
            "expiration_leeway": 60,
            "not_before_leeway": 90,
            "bound_subject": "builder-1",
            "bound_claims": {"team": ["a", "b"]},
            "bound_claims_type": "string",
            "groups_claim": "groups",
            "claim_mappings": {"email": "email"},
            "oidc_scopes": ["email"],
            "verbose_oidc_logging": False,
            "user_claim_json_pointer": False,
            "max_age": 0,
            "token_ttl": 600,
            "token_max_ttl": 3600,
            "token_explicit_max_ttl": 7200,
            "token_period": 0,
            "token_num_uses": 0,
            "token_no_default_policy": False,
            "token_policies": ["jwt-dev"],
            "token_bound_cidrs": ["127.0.0.0/8"],
            "token_type": "service",
        },
        "jwt read_role",
    )
    # hvac sends bound_claims as a JSON object; a value that is neither a string nor a list
    # of strings is refused, naming the field, and the role stays as it was.
    expect(exceptions.InvalidRequest, jwt_api.create_role, name="ci", user_claim="sub",
           allowed_redirect_uris=[redirect], bound_claims={"team": {"nested": 1}},
           contains="bound_claims")
    assert jwt_api.read_role(name="ci")["data"]["bound_claims"] == {"team": ["a", "b"]}
    # A jwt role needs a binding; an oidc role (hvac's oidc default) needs redirect URIs.
    expect(exceptions.InvalidRequest, jwt_api.create_role, name="loose", user_claim="sub",
           allowed_redirect_uris=[redirect])
    expect(exceptions.InvalidPath, jwt_api.read_role, name="loose")
    assert jwt_api.list_roles()["data"] == {"keys": ["ci"]}
    step("jwt create_role/read_role/list_roles")

    t = int(time.time())
    claims = {"iss": "https://ci.example", "sub": "builder-1", "aud": "tresor", "iat": t,
              "nbf": t, "exp": t + 300, "team": "a", "groups": ["eng"], "email": "b1@ci.example"}
    r = jwt_api.jwt_login(role="ci", jwt=sign(key, claims))
    auth = r["auth"]
    assert auth["policies"] == ["default", "jwt-dev"] and auth["token_policies"] == ["default", "jwt-dev"], auth
    assert auth["lease_duration"] == 600 and auth["renewable"] is True, auth
    assert auth["metadata"] == {"role": "ci", "email": "b1@ci.example"}, auth
    me = lookup_self()
    assert me["meta"]["role"] == "ci" and me["type"] == "service", me
    assert me["explicit_max_ttl"] == 7200, me
    as_root()
    # The config's default_role serves a login that names none.
    auth = jwt_api.jwt_login(role="", jwt=sign(key, claims), use_token=False)["auth"]
    assert auth["metadata"]["role"] == "ci", auth
    for bad, why in [
        (sign(key, dict(claims, aud="someone-else")), "aud"),
        (sign(key, dict(claims, team="c")), "claim"),
        (sign(key, dict(claims, exp=t - 3600)), "exp"),
        (sign(other, claims), "signature"),
        (sign(key, dict(claims, iss="https://elsewhere")), "iss"),
    ]:
        expect(exceptions.InvalidRequest, jwt_api.jwt_login, role="ci", jwt=bad)
        assert client.token == ROOT, why
    step("jwt jwt_login with a locally signed JWT")

    assert is_204(jwt_api.delete_role(name="ci"))
    assert is_204(jwt_api.delete_role(name="ci"))
    expect(exceptions.InvalidPath, jwt_api.read_role, name="ci")
    expect(exceptions.InvalidPath, jwt_api.list_roles)
    expect(exceptions.InvalidRequest, jwt_api.jwt_login, role="ci", jwt=sign(key, claims))
    step("jwt delete_role")

    # OIDC, as hvac's own tests do it: Tresor's identity tokens are the provider
    # (oidc_discovery_url = VAULT_ADDR/v1/identity/oidc), and a jwt role on the oidc mount
    # logs in with an identity token an approle login was issued.
    ident = client.secrets.identity
    ident.configure_tokens_backend(issuer=ADDR)
    ident.create_named_key(name="oidc-test-key")
    ident.create_or_update_role(name="hvac-oidc-test", key="oidc-test-key")
    client_id = ident.read_role(name="hvac-oidc-test")["data"]["client_id"]
    ident.create_named_key(name="oidc-test-key", allowed_client_ids=[client_id])
    client.sys.create_or_update_policy(
        name="idtoken", policy='path "identity/oidc/token/*" { capabilities = ["read"] }'
    )
    client.sys.enable_auth_method(method_type="approle", path="oidc-test-approle")
    client.auth.approle.create_or_update_approle(
        role_name="app", token_policies=["idtoken"], mount_point="oidc-test-approle"
    )
    role_id = client.auth.approle.read_role_id(role_name="app", mount_point="oidc-test-approle")["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(role_name="app", mount_point="oidc-test-approle")["data"]["secret_id"]
    app = hvac.Client(url=ADDR, timeout=30)
    app.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point="oidc-test-approle")
    id_token = app.secrets.identity.generate_signed_id_token(name="hvac-oidc-test")["data"]["token"]

    discovery = f"{ADDR}/v1/identity/oidc"
    resp = oidc_api.configure(
        oidc_discovery_url=discovery,
        oidc_client_id="hvac-client-id",
        oidc_client_secret="hvac-client-secret",
        oidc_response_mode="query",
        oidc_response_types=["code"],
        default_role="web",
    )
    assert is_204(resp), resp
    c = oidc_api.read_config()["data"]
    check_fields(
        c,
        {
            "oidc_discovery_url": discovery,
            "oidc_client_id": "hvac-client-id",
            "oidc_response_mode": "query",
            "oidc_response_types": ["code"],
            "default_role": "web",
            "jwt_validation_pubkeys": [],
            "jwks_url": "",
        },
        "oidc read_config",
    )
    assert "oidc_client_secret" not in c and "hvac-client-secret" not in json.dumps(c), c
    step("oidc configure/read_config")

    callback = "http://127.0.0.1:8250/oidc/callback"
    # (hvac's OIDC.create_role hands back None whatever the answer: the reads check it.)
    oidc_api.create_role(name="web", user_claim="sub", allowed_redirect_uris=[callback],
                         oidc_scopes=["profile"], token_policies=["web-pol"])
    r = oidc_api.read_role(name="web")["data"]
    check_fields(
        r,
        {"role_type": "oidc", "user_claim": "sub", "allowed_redirect_uris": [callback],
         "oidc_scopes": ["profile"], "bound_claims_type": "string", "verbose_oidc_logging": False,
         "token_policies": ["web-pol"], "token_ttl": 0, "bound_audiences": []},
        "oidc read_role",
    )
    oidc_api.create_role(name="idt", role_type="jwt", user_claim="sub",
                         allowed_redirect_uris=[callback], bound_audiences=[client_id],
                         token_policies=["idt-pol"])
    assert oidc_api.read_role(name="idt")["data"]["role_type"] == "jwt"
    expect(exceptions.InvalidRequest, oidc_api.create_role, name="nowhere", user_claim="sub",
           allowed_redirect_uris=[], contains="allowed_redirect_uris")
    assert oidc_api.list_roles()["data"] == {"keys": ["idt", "web"]}
    step("oidc create_role/read_role/list_roles")

    r = oidc_api.oidc_authorization_url_request(role="web", redirect_uri=callback)
    url = r["data"]["auth_url"]
    assert "?client_id=hvac-client-id" in url, url
    q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert q["redirect_uri"] == [callback] and q["response_type"] == ["code"], q
    assert q["scope"] == ["openid profile"] and q["state"][0] and q["nonce"][0], q
    e = expect(exceptions.InvalidRequest, oidc_api.oidc_authorization_url_request,
               role="web", redirect_uri="https://attacker.example/cb")
    assert "redirect_uri" in str(e), e
    expect(exceptions.InvalidRequest, oidc_api.oidc_authorization_url_request,
           role="nobody", redirect_uri=callback)
    step("oidc_authorization_url_request")

    auth = oidc_api.jwt_login(role="idt", jwt=id_token)["auth"]
    assert auth["policies"] == ["default", "idt-pol"], auth
    me = lookup_self()
    assert me["meta"]["role"] == "idt", me
    as_root()
    expect(exceptions.InvalidRequest, oidc_api.jwt_login, role="web", jwt=id_token,
           contains="oidc")
    step("oidc jwt_login with an identity token")

    assert is_204(oidc_api.delete_role(name="idt"))
    assert oidc_api.list_roles()["data"] == {"keys": ["web"]}
    expect(exceptions.InvalidPath, oidc_api.read_role, name="idt")
    step("oidc delete_role")

    # hvac's jwt_login test: the jwt mount reconfigured with Tresor's identity JWKS
    # (jwks_url), a jwt role bound to the identity role's client ID.
    jwks = f"{ADDR}/v1/identity/oidc/.well-known/keys"
    assert is_204(jwt_api.configure(jwks_url=jwks))
    c = jwt_api.read_config()["data"]
    assert c["jwks_url"] == jwks and c["jwt_validation_pubkeys"] == [] and c["default_role"] == "", c
    assert is_204(jwt_api.create_role(name="hvac-jwt", role_type="jwt", user_claim="sub",
                                      allowed_redirect_uris=[f"{ADDR}/jwt-test/oidc/callback"],
                                      bound_audiences=[client_id]))
    jwt_api.jwt_login(role="hvac-jwt", jwt=id_token)
    assert "hvac-jwt" in lookup_self()["meta"]["role"]
    as_root()
    step("jwt jwt_login with jwks_url")


# --------------------------------------------------------------------------------------------
# Kubernetes
# --------------------------------------------------------------------------------------------


class Review(http.server.BaseHTTPRequestHandler):
    """A TokenReview endpoint: authenticates the reviewer's bearer token and verifies the
    service-account JWT with the signing key made here."""

    reviewer = ""
    sa_public = ""
    calls = 0

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
            return self.reply(404, {"kind": "Status", "message": "not found"})
        if self.headers.get("authorization") != "Bearer " + Review.reviewer:
            return self.reply(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
        Review.calls += 1
        spec = body.get("spec", {})
        auds = spec.get("audiences") or ["https://kubernetes.default.svc"]
        try:
            c = pyjwt.decode(spec.get("token", ""), Review.sa_public, algorithms=["RS256"], audience=auds)
            k = c["kubernetes.io"]
            status = {"authenticated": True, "audiences": auds, "user": {
                "username": "system:serviceaccount:%s:%s" % (k["namespace"], k["serviceaccount"]["name"]),
                "uid": k["serviceaccount"]["uid"], "groups": ["system:serviceaccounts"]}}
        except Exception as e:  # noqa: BLE001 - any refusal is an unauthenticated review
            status = {"authenticated": False, "error": str(e)}
        self.reply(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                         "spec": spec, "status": status})

    def reply(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)


def kubernetes():
    k8s = client.auth.kubernetes
    work = tempfile.mkdtemp()

    # The API server's CA and certificate, the service-account signing key (its certificate
    # goes into pem_keys: hvac only takes certificates there), and the reviewer's JWT.
    ca_key, leaf_key, sa_key, reviewer_key = rsa_key(), rsa_key(), rsa_key(), rsa_key()
    ca_cert = certificate(ca_key, "test-kube-ca", ca=True)
    leaf = certificate(leaf_key, "127.0.0.1", issuer_key=ca_key, issuer_cert=ca_cert, san_ip=True)
    sa_cert = pem_cert(certificate(sa_key, "service-account-signer"))
    with open(os.path.join(work, "api.crt"), "w") as f:
        f.write(pem_cert(leaf))
    with open(os.path.join(work, "api.key"), "w") as f:
        f.write(pem_private(leaf_key))
    Review.reviewer = sign(reviewer_key, {"sub": "system:serviceaccount:kube-system:reviewer"})
    Review.sa_public = pem_public(sa_key)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Review)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(work, "api.crt"), os.path.join(work, "api.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    host = f"https://127.0.0.1:{srv.server_address[1]}"
    ca = pem_cert(ca_cert)

    client.sys.enable_auth_method(method_type="kubernetes")
    assert "kubernetes/" in client.sys.list_auth_methods()["data"]
    expect(exceptions.InvalidPath, k8s.read_config)
    expect(exceptions.InvalidPath, k8s.list_roles)

    resp = k8s.configure(
        kubernetes_host=host,
        kubernetes_ca_cert=ca,
        token_reviewer_jwt=Review.reviewer,
        pem_keys=[sa_cert],
        issuer="https://kubernetes.default.svc.cluster.local",
    )
    assert is_204(resp), resp
    c = k8s.read_config()
    check_fields(
        c,
        {
            "kubernetes_host": host,
            "kubernetes_ca_cert": ca,
            "pem_keys": [sa_cert.strip()],
            "issuer": "https://kubernetes.default.svc.cluster.local",
            "disable_iss_validation": True,
            "disable_local_ca_jwt": False,
            "token_reviewer_jwt_set": True,
        },
        "read_config",
    )
    assert "token_reviewer_jwt" not in c and Review.reviewer not in json.dumps(c), c
    expect(exceptions.ParamValidationError, k8s.configure, kubernetes_host=host, pem_keys=["junk"])
    expect(exceptions.InvalidRequest, k8s.configure, kubernetes_host="", kubernetes_ca_cert=ca,
           contains="host")
    assert k8s.read_config() == c, "a refused write changes nothing"
    step("configure/read_config")

    # The placeholder certificate of Vault's own API docs is refused, naming the field, as
    # Vault 1.17 and later refuse it; nothing is stored.
    client.sys.enable_auth_method(method_type="kubernetes", path="kubernetes-test")
    placeholder = "-----BEGIN CERTIFICATE-----\n.....\n-----END CERTIFICATE-----"
    expect(exceptions.InvalidRequest, k8s.configure, kubernetes_host="https://192.168.99.100:8443",
           kubernetes_ca_cert=placeholder, issuer="stanley", mount_point="kubernetes-test",
           contains="invalid kubernetes_ca_cert: invalid certificate encoding")
    # Base64 that is not a certificate: the message says so too.
    expect(exceptions.InvalidRequest, k8s.configure, kubernetes_host="https://192.168.99.100:8443",
           kubernetes_ca_cert="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
           mount_point="kubernetes-test", contains="invalid kubernetes_ca_cert: error loading a CA certificate: invalid peer certificate")
    expect(exceptions.InvalidPath, k8s.read_config, mount_point="kubernetes-test")
    # A reviewer token need not be a JWT (Vault 1.15 and later take any bearer token), but it
    # must fit in an Authorization header.
    k8s.configure(kubernetes_host="https://192.168.99.100:8443", token_reviewer_jwt="reviewer_jwt",
                  mount_point="kubernetes-test")
    assert k8s.read_config(mount_point="kubernetes-test")["token_reviewer_jwt_set"] is True
    expect(exceptions.InvalidRequest, k8s.configure, kubernetes_host="https://192.168.99.100:8443",
           token_reviewer_jwt="two words", mount_point="kubernetes-test", contains="token_reviewer_jwt")
    step("configure refuses Vault's placeholder certificate")

    resp = k8s.create_role(
        name="builder",
        bound_service_account_names=["builder"],
        bound_service_account_namespaces="ci,dev",
        ttl="10m",
        max_ttl="1h",
        period=None,
        policies=["k8s-dev"],
        token_type="service",
        alias_name_source="serviceaccount_name",
        audience="tresor",
    )
    assert is_204(resp), resp
    r = k8s.read_role(name="builder")
    check_fields(
        r,
        {
            "bound_service_account_names": ["builder"],
            "bound_service_account_namespaces": ["ci", "dev"],
            "audience": "tresor",
            "alias_name_source": "serviceaccount_name",
            "token_ttl": 600,
            "token_max_ttl": 3600,
            "token_period": 0,
            "token_policies": ["k8s-dev"],
            "token_type": "service",
            "token_bound_cidrs": [],
            "token_num_uses": 0,
            "token_no_default_policy": False,
            "token_explicit_max_ttl": 0,
        },
        "read_role",
    )
    assert r["ttl"] == 600 and r["max_ttl"] == 3600 and r["policies"] == ["k8s-dev"], r
    k8s.create_role(name="any", bound_service_account_names="*", bound_service_account_namespaces=["ops"])
    assert k8s.read_role(name="any")["token_type"] == "default"
    # Both bindings "*" is allowed, as in Vault (hvac's "both bounds wildcard permitted"): the
    # TokenReview still decides every login.
    k8s.create_role(name="both", bound_service_account_names=["*"], bound_service_account_namespaces=["*"],
                    audience="tresor")
    both = k8s.read_role(name="both")
    assert both["bound_service_account_names"] == ["*"] and both["bound_service_account_namespaces"] == ["*"], both
    assert k8s.list_roles() == {"keys": ["any", "both", "builder"]}
    step("create_role/read_role/list_roles")

    t = int(time.time())

    def sa_jwt(ns, key=sa_key, name="builder"):
        return sign(key, {"iss": "https://kubernetes.default.svc.cluster.local", "aud": ["tresor"],
                          "sub": f"system:serviceaccount:{ns}:{name}", "iat": t, "exp": t + 600,
                          "kubernetes.io": {"namespace": ns,
                                            "serviceaccount": {"name": name, "uid": "uid-1"}}})

    reviews = Review.calls
    r = k8s.login(role="builder", jwt=sa_jwt("ci"))
    auth = r["auth"]
    assert auth["policies"] == ["default", "k8s-dev"] and auth["lease_duration"] == 600, auth
    assert auth["metadata"]["role"] == "builder", auth
    assert auth["metadata"]["service_account_namespace"] == "ci", auth
    assert auth["metadata"]["service_account_name"] == "builder", auth
    assert Review.calls == reviews + 1, "the TokenReview endpoint decided"
    me = lookup_self()
    assert me["meta"]["role"] == "builder" and me["type"] == "service", me
    as_root()
    ent = client.secrets.identity.read_entity(entity_id=auth["entity_id"])["data"]
    assert [a["name"] for a in ent["aliases"]] == ["ci/builder"], ent
    for bad, why in [
        (sa_jwt("prod"), "namespace not authorized"),
        (sa_jwt("ci", name="intruder"), "service account name not authorized"),
        (sa_jwt("ci", key=reviewer_key), "invalid jwt"),
    ]:
        e = expect(exceptions.InvalidRequest, k8s.login, role="builder", jwt=bad)
        assert why in str(e), e
        assert client.token == ROOT
    expect(exceptions.InvalidRequest, k8s.login, role="nobody", jwt=sa_jwt("ci"))
    reviews = Review.calls
    r = k8s.login(role="both", jwt=sa_jwt("prod"))
    assert r["auth"]["metadata"]["service_account_namespace"] == "prod", r
    assert Review.calls == reviews + 1, "the TokenReview endpoint decided"
    as_root()
    e = expect(exceptions.InvalidRequest, k8s.login, role="both", jwt=sa_jwt("prod", key=reviewer_key))
    assert "invalid jwt" in str(e), e
    step("login reviewed by a local TokenReview endpoint")

    assert is_204(k8s.delete_role(name="builder"))
    assert is_204(k8s.delete_role(name="builder"))
    expect(exceptions.InvalidPath, k8s.read_role, name="builder")
    assert k8s.list_roles() == {"keys": ["any", "both"]}
    expect(exceptions.InvalidRequest, k8s.login, role="builder", jwt=sa_jwt("ci"))
    step("delete_role")
    srv.shutdown()


FAMILIES = {"ldap": ldap, "jwt": jwt_oidc, "kubernetes": kubernetes}
FAMILIES[os.environ["FAMILY"]]()
print("ALL OK", flush=True)
