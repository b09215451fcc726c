# A relying party logging users in through Tresor's OIDC provider with Authlib, an OIDC client
# library, and plain `requests` for the attacks. Driven by crates/tresor/tests/oidc_provider.rs,
# which configures the provider and passes what it made in the environment. Prints `OK <step>`
# per step and `ALL OK` at the end.
import base64
import concurrent.futures
import json
import os
import sys
import time
from urllib.parse import parse_qsl, urlparse

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

addr = os.environ["VAULT_ADDR"]
provider = os.environ["PROVIDER"]
alice = os.environ["ALICE_TOKEN"]
bob = os.environ["BOB_TOKEN"]
alice_entity = os.environ["ALICE_ENTITY"]
app_id, app_secret = os.environ["APP_ID"], os.environ["APP_SECRET"]
cli_id = os.environ["CLI_ID"]
redirect = os.environ["REDIRECT"]
base = f"{addr}/v1/identity/oidc/provider/{provider}"
T = 20


def ok(step):
    print(f"OK {step}", flush=True)


def oauth_error(r, status, error):
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"] == error, body
    assert body.get("error_description"), body


# Discovery without a token, as every OIDC library starts.
r = requests.get(f"{base}/.well-known/openid-configuration", timeout=T)
assert r.headers["Cache-Control"] == "max-age=3600", r.headers
conf = r.json()
assert conf["issuer"] == base, conf
assert conf["token_endpoint"] == f"{base}/token", conf
assert conf["userinfo_endpoint"] == f"{base}/userinfo", conf
assert "S256" in conf["code_challenge_methods_supported"], conf
assert set(conf["scopes_supported"]) == {"openid", "profile", "groups"}, conf
jwks = requests.get(conf["jwks_uri"], timeout=T).json()
assert jwks["keys"], jwks
keys = JsonWebKey.import_key_set(jwks)
ok("discovery")


def authorize(token, params):
    """What the web UI does for the signed-in user: the authorize API with the user's token."""
    return requests.get(f"{base}/authorize", params=params, timeout=T,
                        headers={"X-Vault-Token": token} if token else {})


def start(session, token=alice, **extra):
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = session.create_authorization_url(
        conf["authorization_endpoint"], code_verifier=verifier, nonce=nonce, **extra)
    params = dict(parse_qsl(urlparse(url).query))
    r = authorize(token, params)
    return r, params, verifier, nonce, state


def verify_id_token(id_token, client_id, nonce, access_token):
    claims = jwt.decode(
        id_token, keys, claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "value": conf["issuer"]}},
        claims_params={"nonce": nonce, "client_id": client_id, "access_token": access_token})
    claims.validate()  # iss, aud, exp, iat, nonce and at_hash
    return claims


# 1. A confidential client: code flow with PKCE (S256), client_secret_basic.
app = OAuth2Session(app_id, app_secret, scope="openid profile groups", redirect_uri=redirect,
                    code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic")
r, params, verifier, nonce, state = start(app, max_age=600)
assert r.status_code == 200, (r.status_code, r.text)
assert r.json()["state"] == state, r.text
code = r.json()["code"]
tok = app.fetch_token(conf["token_endpoint"], code=code, code_verifier=verifier)
assert tok["token_type"] == "Bearer" and tok["expires_in"] > 0, tok
claims = verify_id_token(tok["id_token"], app_id, nonce, tok["access_token"])
assert claims["sub"] == alice_entity, claims
assert claims["aud"] == app_id, claims
assert claims["username"] == "alice", claims
assert claims["contact"] == {"email": "alice@example.com"}, claims
assert claims["groups"] == ["engineers"], claims
# auth_time (asked for with max_age) is when alice's Tresor token was made.
assert "auth_time" in claims and claims["auth_time"] <= claims["iat"], claims
assert claims["c_hash"] and claims["at_hash"], claims
ok("confidential client, basic auth, PKCE")

info = app.get(conf["userinfo_endpoint"], timeout=T)
assert info.status_code == 200, info.text
info = info.json()
assert info["sub"] == alice_entity and info["username"] == "alice", info
assert info["groups"] == ["engineers"], info
ok("userinfo")

# The code is spent: a second exchange of the same code is refused.
r = requests.post(conf["token_endpoint"], auth=(app_id, app_secret), timeout=T, data={
    "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
    "code_verifier": verifier})
oauth_error(r, 400, "invalid_grant")
ok("code replay refused")

# 2. client_secret_post, without PKCE, asking only for openid: no profile claims.
post = OAuth2Session(app_id, app_secret, scope="openid", redirect_uri=redirect,
                     token_endpoint_auth_method="client_secret_post")
nonce = generate_token(20)
url, state = post.create_authorization_url(conf["authorization_endpoint"], nonce=nonce)
r = authorize(alice, dict(parse_qsl(urlparse(url).query)))
assert r.status_code == 200, r.text
tok = post.fetch_token(conf["token_endpoint"], code=r.json()["code"])
claims = verify_id_token(tok["id_token"], app_id, nonce, tok["access_token"])
assert "username" not in claims and "groups" not in claims, claims
assert "auth_time" not in claims, claims
ok("client_secret_post, openid only")

# 3. A public client: PKCE and no secret.
cli = OAuth2Session(cli_id, None, scope="openid groups", redirect_uri=redirect,
                    code_challenge_method="S256", token_endpoint_auth_method="none")
r, params, verifier, nonce, state = start(cli)
assert r.status_code == 200, r.text
tok = cli.fetch_token(conf["token_endpoint"], code=r.json()["code"], code_verifier=verifier)
claims = verify_id_token(tok["id_token"], cli_id, nonce, tok["access_token"])
assert claims["aud"] == cli_id and claims["groups"] == ["engineers"], claims
ok("public client with PKCE")

# A public client without PKCE is refused at authorize.
p = {"client_id": cli_id, "scope": "openid", "redirect_uri": redirect, "response_type": "code",
     "state": "s"}
oauth_error(authorize(alice, p), 400, "invalid_request")
ok("public client needs PKCE")

# 4. Attacks on the token endpoint.
def fresh_code(session=app):
    r, params, verifier, nonce, state = start(session)
    assert r.status_code == 200, r.text
    return r.json()["code"], verifier


def exchange(code, verifier, auth=(app_id, app_secret), redirect_uri=redirect, extra=None):
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    data.update(extra or {})
    return requests.post(conf["token_endpoint"], auth=auth, data=data, timeout=T)


code, verifier = fresh_code()
r = exchange(code, verifier, auth=(app_id, "hvo_secret_wrong"))
oauth_error(r, 401, "invalid_client")
assert r.headers["WWW-Authenticate"] == "Basic", r.headers
assert r.headers["Pragma"] == "no-cache" and r.headers["Cache-Control"] == "no-store", r.headers
oauth_error(exchange(code, verifier, auth=("no-such-client", app_secret)), 401, "invalid_client")
# A wrong secret does not spend the code; a wrong verifier does.
oauth_error(exchange(code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B")), 400,
            "invalid_grant")
oauth_error(exchange(code, verifier), 400, "invalid_grant")
ok("wrong secret and wrong verifier refused")

code, verifier = fresh_code()
oauth_error(exchange(code, verifier, redirect_uri=redirect + "/evil"), 400, "invalid_grant")
code, verifier = fresh_code()
# A public client cannot redeem the confidential client's code.
oauth_error(requests.post(conf["token_endpoint"], timeout=T, data={
    "grant_type": "authorization_code", "code": code, "redirect_uri": redirect,
    "code_verifier": verifier, "client_id": cli_id}), 400, "invalid_grant")
code, verifier = fresh_code()
oauth_error(exchange(code, verifier, extra={"grant_type": "client_credentials"}), 400,
            "unsupported_grant_type")
ok("other redirect, other client, other grant refused")

# Eight exchanges racing one code: exactly one gets tokens.
code, verifier = fresh_code()
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    results = list(pool.map(lambda _: exchange(code, verifier), range(8)))
wins = [r for r in results if r.status_code == 200]
assert len(wins) == 1, [(r.status_code, r.text) for r in results]
for r in results:
    if r.status_code != 200:
        oauth_error(r, 400, "invalid_grant")
ok("racing exchanges: one token")

# 5. Attacks on authorize.
good = {"client_id": app_id, "scope": "openid", "redirect_uri": redirect,
        "response_type": "code", "state": "s1"}
r = authorize(None, good)
assert r.status_code in (401, 403), (r.status_code, r.text)
oauth_error(authorize(bob, good), 400, "access_denied")  # bob is in no assignment of app
oauth_error(authorize(alice, dict(good, redirect_uri="http://127.0.0.1:1/evil")), 400,
            "invalid_redirect_uri")
oauth_error(authorize(alice, dict(good, redirect_uri=redirect + "/")), 400,
            "invalid_redirect_uri")
oauth_error(authorize(alice, dict(good, scope="profile")), 400, "invalid_request")
oauth_error(authorize(alice, dict(good, response_type="token")), 400,
            "unsupported_response_type")
oauth_error(authorize(alice, dict(good, client_id="nobody")), 400, "invalid_client_id")
r = authorize(alice, dict(good, request="eyJhbGciOiJub25lIn0.e30."))
oauth_error(r, 400, "request_not_supported")
oauth_error(authorize(alice, dict(good, max_age="0")), 400, "invalid_request")
time.sleep(2.1)
oauth_error(authorize(alice, dict(good, max_age="1")), 400, "max_age_violation")
# Errors carry the request's state back, as the UI needs.
assert authorize(bob, good).json()["state"] == "s1"
oauth_error(authorize(alice, dict(good, code_challenge="short", code_challenge_method="S256")),
            400, "invalid_request")
ok("authorize refusals")

# Huge, negative, empty and malformed values: clear 4xx answers, never a code.
oauth_error(authorize(alice, dict(good, state="x" * 5000)), 400, "invalid_request")
oauth_error(authorize(alice, dict(good, nonce="n" * 5000)), 400, "invalid_request")
oauth_error(authorize(alice, dict(good, max_age="-5")), 400, "invalid_request")
for bad_age in ["99999999999999999999", "soon", "1.5"]:
    r = authorize(alice, dict(good, max_age=bad_age))
    assert r.status_code == 400 and "max_age" in r.text, (bad_age, r.status_code, r.text)
oauth_error(authorize(alice, dict(good, code_challenge="c" * 129, code_challenge_method="S256")),
            400, "invalid_request")
oauth_error(authorize(alice, dict(good, code_challenge="c" * 43, code_challenge_method="S512")),
            400, "invalid_request")
code, verifier = fresh_code()
for data in [{"grant_type": "authorization_code", "code": "", "redirect_uri": redirect},
             {"grant_type": "", "code": code, "redirect_uri": redirect},
             {"grant_type": "authorization_code", "code": "x" * 100000, "redirect_uri": redirect}]:
    r = requests.post(conf["token_endpoint"], auth=(app_id, app_secret), data=data, timeout=T)
    assert r.status_code == 400 and r.json()["error"] in ("invalid_request", "invalid_grant"), r.text
# None of those spent the real code, whose exchange still works (with its verifier).
assert exchange(code, verifier).status_code == 200
ok("huge, negative and malformed values refused")

# 6. Access tokens: tampered, sent to the wrong provider, or used as a Tresor token.
tok = exchange(*fresh_code()).json()
access = tok["access_token"]
body, tag = access.split(".")
claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
claims["entity_id"] = "someone-else"
forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode() + "." + tag
for bad in [forged, access + "x", "", "not-a-token"]:
    r = requests.get(conf["userinfo_endpoint"], timeout=T,
                     headers={"Authorization": f"Bearer {bad}"})
    oauth_error(r, 401, "invalid_token")
    assert r.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"'), r.headers
r = requests.get(f"{addr}/v1/identity/oidc/provider/default/userinfo", timeout=T,
                 headers={"Authorization": f"Bearer {access}"})
oauth_error(r, 401, "invalid_token")
r = requests.get(f"{addr}/v1/auth/token/lookup-self", timeout=T,
                 headers={"Authorization": f"Bearer {access}"})
assert r.status_code == 403, (r.status_code, r.text)
r = requests.get(conf["userinfo_endpoint"], timeout=T, headers={"Authorization": f"Bearer {access}"})
assert r.status_code == 200 and r.json()["sub"] == alice_entity, r.text
ok("access token checks")

with open("access_token", "w") as f:
    f.write(access)
print("ALL OK")
