"""hvac's database, transit and SSH secrets-engine calls against a running Tresor (driven by
tests/secrets_hvac.rs, one engine per run).

Environment: VAULT_ADDR, VAULT_TOKEN, ENGINE (transit, ssh or database), WORKDIR (scratch);
for database also PGPORT, PGSOCKDIR (the admin's trust socket) and PGADMIN_PW.
Every call goes through hvac's public API as a user's script would, with the arguments hvac's
documentation shows; each answer is checked against Vault's documented behaviour (status,
envelope, field names and types, defaults on read) and, where it can be, against the thing
itself: ciphertext decrypted with the exported key, signatures verified with the public key
(`cryptography`), SSH certificates read back with `ssh-keygen -L`, database credentials used
with `psql`. Prints "OK <step>" lines and exits non-zero on the first failure.
"""

import base64
import datetime
import hashlib
import hmac as pyhmac
import json
import os
import subprocess
import sys
import time

import hvac
from hvac import exceptions

ADDR = os.environ["VAULT_ADDR"]
work = os.environ["WORKDIR"]
client = hvac.Client(url=ADDR, token=os.environ["VAULT_TOKEN"], timeout=30)


def step(name):
    print("OK", name, flush=True)


def b64(b):
    return base64.b64encode(b).decode()


def unb64(s):
    return base64.b64decode(s)


def expect_error(cls, fn, *args, contains=None, batch=False, **kwargs):
    """The call must fail with hvac's exception for the status (400 InvalidRequest, 404
    InvalidPath, ...), carrying Vault's `errors` list (which hvac only reads from an
    `application/json` answer). A failed batch (`batch`) is Vault's 400 with every item's
    result in `data.batch_results` instead."""
    try:
        r = fn(*args, **kwargs)
    except cls as e:
        if batch:
            assert e.errors is None and e.json["data"]["batch_results"], e.json
            return e
        if cls is not exceptions.InvalidPath or e.errors is not None:
            assert isinstance(e.errors, list), f"errors not a list: {e!r} {e.json!r}"
        if contains is not None:
            text = " ".join(e.errors or [])
            assert contains.lower() in text.lower(), f"{contains!r} not in {e.errors!r}"
        return e
    raise AssertionError(f"expected {cls.__name__}, got {r!r}")


def data_of(r):
    """A 200 answer's envelope: hvac returns the parsed JSON; check its shape."""
    assert isinstance(r, dict), f"expected a JSON answer, got {r!r}"
    for k in ("request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth"):
        assert k in r, f"envelope lacks {k}: {r}"
    assert isinstance(r["lease_duration"], int) and isinstance(r["renewable"], bool), r
    return r["data"]


def no_content(r):
    """A 204 answer: hvac returns the `requests.Response`."""
    assert not isinstance(r, dict), f"expected 204, got {r!r}"
    assert r.status_code == 204, (r.status_code, r.text)


def ok_write(r):
    """A write Vault answers with 204, or 200 with data (newer versions return the object)."""
    if isinstance(r, dict):
        return data_of(r)
    no_content(r)
    return None


def keys_of(r):
    d = data_of(r)
    assert isinstance(d["keys"], list) and all(isinstance(k, str) for k in d["keys"]), d
    return d["keys"]


# ---------------------------------------------------------------------------------------------
# transit


def transit():
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, utils as asym_utils
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    M = "hvac-transit"
    t = client.secrets.transit
    client.sys.enable_secrets_engine("transit", path=M)
    step("mount")

    # What each type supports, as Vault's read documents it.
    types = {
        "aes256-gcm96": dict(enc=True, der=True, sign=False, asym=False),
        "chacha20-poly1305": dict(enc=True, der=True, sign=False, asym=False),
        "ed25519": dict(enc=False, der=True, sign=True, asym=True),
        "ecdsa-p256": dict(enc=False, der=False, sign=True, asym=True),
        "ecdsa-p384": dict(enc=False, der=False, sign=True, asym=True),
        "ecdsa-p521": dict(enc=False, der=False, sign=True, asym=True),
        "rsa-2048": dict(enc=True, der=False, sign=True, asym=True),
        "rsa-3072": dict(enc=True, der=False, sign=True, asym=True),
        "rsa-4096": dict(enc=True, der=False, sign=True, asym=True),
    }
    curve_name = {"ecdsa-p256": "P-256", "ecdsa-p384": "P-384", "ecdsa-p521": "P-521"}
    for kt, sup in types.items():
        name = "k-" + kt
        ok_write(t.create_key(name=name, key_type=kt, mount_point=M))
        d = data_of(t.read_key(name=name, mount_point=M))
        assert d["name"] == name and d["type"] == kt, d
        assert d["latest_version"] == 1 and d["min_decryption_version"] == 1, d
        assert d["min_encryption_version"] == 0 and d["min_available_version"] == 0, d
        for flag in ("deletion_allowed", "derived", "exportable", "allow_plaintext_backup"):
            assert d[flag] is False, (flag, d)
        assert d["supports_encryption"] is sup["enc"] and d["supports_decryption"] is sup["enc"], d
        assert d["supports_derivation"] is sup["der"] and d["supports_signing"] is sup["sign"], d
        assert d["auto_rotate_period"] == 0 and isinstance(d["auto_rotate_period"], int), d
        assert list(d["keys"]) == ["1"], d
        v1 = d["keys"]["1"]
        if sup["asym"]:
            assert isinstance(v1, dict) and v1["public_key"] and v1["creation_time"], d
            assert v1["certificate_chain"] == "", v1
            if kt in curve_name:
                assert v1["name"] == curve_name[kt], v1
                pub = serialization.load_pem_public_key(v1["public_key"].encode())
                assert isinstance(pub, ec.EllipticCurvePublicKey), pub
            elif kt.startswith("rsa-"):
                pub = serialization.load_pem_public_key(v1["public_key"].encode())
                assert pub.key_size == int(kt[4:]), pub.key_size
            else:
                assert len(unb64(v1["public_key"])) == 32, v1
        else:
            # Symmetric versions show their creation time as Unix seconds.
            assert isinstance(v1, int) and abs(v1 - time.time()) < 300, d
    step("create_key/read_key for every key type")

    # creating a key that exists changes nothing and says so (a warning, as Vault)
    again = t.create_key(name="k-ed25519", key_type="aes256-gcm96", mount_point=M)
    assert data_of(again)["type"] == "ed25519" and again["warnings"] == ["key k-ed25519 already existed"], again
    listed = keys_of(t.list_keys(mount_point=M))
    assert sorted(listed) == sorted("k-" + kt for kt in types), listed
    expect_error(exceptions.InvalidPath, t.read_key, name="nope", mount_point=M)
    step("list_keys")

    # encrypt/decrypt, with and without associated data
    K = "k-aes256-gcm96"
    msg = b"the quick brown fox"
    enc = data_of(t.encrypt_data(name=K, plaintext=b64(msg), mount_point=M))
    assert enc["ciphertext"].startswith("vault:v1:") and enc["key_version"] == 1, enc
    dec = data_of(t.decrypt_data(name=K, ciphertext=enc["ciphertext"], mount_point=M))
    assert unb64(dec["plaintext"]) == msg, dec
    ad = b64(b"header")
    enc_ad = data_of(t.encrypt_data(name=K, plaintext=b64(msg), associated_data=ad, mount_point=M))
    assert unb64(data_of(t.decrypt_data(name=K, ciphertext=enc_ad["ciphertext"], associated_data=ad, mount_point=M))["plaintext"]) == msg
    expect_error(exceptions.InvalidRequest, t.decrypt_data, name=K, ciphertext=enc_ad["ciphertext"], associated_data=b64(b"other"), mount_point=M)
    expect_error(exceptions.InvalidRequest, t.encrypt_data, name=K, plaintext="not base64!", mount_point=M, contains="base64")
    step("encrypt_data/decrypt_data")

    # batch_input (hvac also sends "plaintext": null / "ciphertext": null next to it)
    items = [{"plaintext": b64(b"one")}, {"plaintext": b64(b"two")}, {"plaintext": b64(b"")}]
    res = data_of(t.encrypt_data(name=K, batch_input=items, mount_point=M))["batch_results"]
    assert len(res) == 3 and all(r["ciphertext"].startswith("vault:v1:") and r["key_version"] == 1 for r in res), res
    back = data_of(t.decrypt_data(name=K, batch_input=[{"ciphertext": r["ciphertext"]} for r in res], mount_point=M))["batch_results"]
    assert [unb64(r["plaintext"]) for r in back] == [b"one", b"two", b""], back
    # One bad item: Vault answers 400 with every item's result, the bad one carrying "error".
    e = expect_error(exceptions.InvalidRequest, t.decrypt_data, name=K, batch_input=[{"ciphertext": res[0]["ciphertext"]}, {"ciphertext": "vault:v1:AAAA"}], mount_point=M, batch=True)
    br = (e.json or {}).get("data", {}).get("batch_results")
    assert br and unb64(br[0]["plaintext"]) == b"one" and br[1].get("error"), e.json
    step("encrypt_data/decrypt_data batch_input")

    # convergent + derived: same context and plaintext give the same ciphertext
    ok_write(t.create_key(name="conv", convergent_encryption=True, derived=True, mount_point=M))
    d = data_of(t.read_key(name="conv", mount_point=M))
    assert d["derived"] is True and d["convergent_encryption"] is True and d["kdf"] == "hkdf_sha256", d
    ctx = b64(b"tenant-1")
    c1 = data_of(t.encrypt_data(name="conv", plaintext=b64(msg), context=ctx, mount_point=M))["ciphertext"]
    c2 = data_of(t.encrypt_data(name="conv", plaintext=b64(msg), context=ctx, mount_point=M))["ciphertext"]
    c3 = data_of(t.encrypt_data(name="conv", plaintext=b64(msg), context=b64(b"tenant-2"), mount_point=M))["ciphertext"]
    assert c1 == c2 != c3, (c1, c2, c3)
    assert unb64(data_of(t.decrypt_data(name="conv", ciphertext=c1, context=ctx, mount_point=M))["plaintext"]) == msg
    expect_error(exceptions.InvalidRequest, t.encrypt_data, name="conv", plaintext=b64(msg), mount_point=M, contains="context")
    step("create_key convergent/derived")

    # upsert through encrypt (root has create), with a type
    data_of(t.encrypt_data(name="upserted", plaintext=b64(msg), type="chacha20-poly1305", mount_point=M))
    assert data_of(t.read_key(name="upserted", mount_point=M))["type"] == "chacha20-poly1305"
    step("encrypt_data upsert")

    # rotate, key_version, rewrap, min_decryption_version, min_encryption_version
    r = ok_write(t.rotate_key(name=K, mount_point=M))
    d = data_of(t.read_key(name=K, mount_point=M))
    assert d["latest_version"] == 2 and sorted(d["keys"]) == ["1", "2"], d
    if r is not None:
        assert r["latest_version"] == 2, r
    e2 = data_of(t.encrypt_data(name=K, plaintext=b64(msg), mount_point=M))
    assert e2["ciphertext"].startswith("vault:v2:") and e2["key_version"] == 2, e2
    e1 = data_of(t.encrypt_data(name=K, plaintext=b64(msg), key_version=1, mount_point=M))
    assert e1["ciphertext"].startswith("vault:v1:") and e1["key_version"] == 1, e1
    rw = data_of(t.rewrap_data(name=K, ciphertext=enc["ciphertext"], mount_point=M))
    assert rw["ciphertext"].startswith("vault:v2:") and rw["key_version"] == 2, rw
    assert unb64(data_of(t.decrypt_data(name=K, ciphertext=rw["ciphertext"], mount_point=M))["plaintext"]) == msg
    rwb = data_of(t.rewrap_data(name=K, ciphertext=None, batch_input=[{"ciphertext": res[0]["ciphertext"]}, {"ciphertext": res[1]["ciphertext"]}], mount_point=M))["batch_results"]
    assert all(x["ciphertext"].startswith("vault:v2:") for x in rwb), rwb
    step("rotate_key/rewrap_data")

    # (hvac itself refuses min_encryption_version <= min_decryption_version in one call)
    ok_write(t.update_key_configuration(name=K, min_decryption_version=2, mount_point=M))
    ok_write(t.update_key_configuration(name=K, min_encryption_version=2, mount_point=M))
    d = data_of(t.read_key(name=K, mount_point=M))
    assert d["min_decryption_version"] == 2 and d["min_encryption_version"] == 2, d
    expect_error(exceptions.InvalidRequest, t.decrypt_data, name=K, ciphertext=enc["ciphertext"], mount_point=M)
    expect_error(exceptions.InvalidRequest, t.encrypt_data, name=K, plaintext=b64(msg), key_version=1, mount_point=M)
    expect_error(exceptions.InvalidRequest, t.update_key_configuration, name=K, min_decryption_version=9, mount_point=M)
    assert data_of(t.read_key(name=K, mount_point=M))["min_decryption_version"] == 2
    ok_write(t.update_key_configuration(name=K, auto_rotate_period="24h", mount_point=M))
    assert data_of(t.read_key(name=K, mount_point=M))["auto_rotate_period"] == 86400
    expect_error(exceptions.InvalidRequest, t.update_key_configuration, name=K, auto_rotate_period="10m", mount_point=M)
    assert data_of(t.read_key(name=K, mount_point=M))["auto_rotate_period"] == 86400
    ok_write(t.create_key(name="auto", auto_rotate_period="2h", mount_point=M))
    assert data_of(t.read_key(name="auto", mount_point=M))["auto_rotate_period"] == 7200
    step("update_key_configuration")

    # trim: refused while min_encryption_version is 0 (Vault: it must be pinned first);
    # then versions below min_available_version are gone, and the answer is the key
    expect_error(exceptions.InvalidRequest, t.trim_key, name="auto", min_version=1, mount_point=M, contains="minimum encryption version")
    d = data_of(t.trim_key(name=K, min_version=2, mount_point=M))
    assert d["min_available_version"] == 2 and sorted(d["keys"]) == ["2"], d
    d = data_of(t.read_key(name=K, mount_point=M))
    assert d["min_available_version"] == 2 and sorted(d["keys"]) == ["2"], d
    expect_error(exceptions.InvalidRequest, t.trim_key, name=K, min_version=3, mount_point=M)
    step("trim_key")

    # delete needs deletion_allowed
    expect_error(exceptions.InvalidRequest, t.delete_key, name="upserted", mount_point=M)
    assert data_of(t.read_key(name="upserted", mount_point=M))["type"] == "chacha20-poly1305"
    ok_write(t.update_key_configuration(name="upserted", deletion_allowed=True, mount_point=M))
    assert data_of(t.read_key(name="upserted", mount_point=M))["deletion_allowed"] is True
    no_content(t.delete_key(name="upserted", mount_point=M))
    expect_error(exceptions.InvalidPath, t.read_key, name="upserted", mount_point=M)
    assert "upserted" not in keys_of(t.list_keys(mount_point=M))
    step("delete_key")

    # export: the exported key decrypts the engine's ciphertext; the hmac key gives its HMACs
    ok_write(t.create_key(name="exp", exportable=True, allow_plaintext_backup=True, mount_point=M))
    expect_error(exceptions.InvalidRequest, t.export_key, name=K, key_type="encryption-key", mount_point=M)
    ex = data_of(t.export_key(name="exp", key_type="encryption-key", mount_point=M))
    assert ex["name"] == "exp" and ex["type"] == "aes256-gcm96" and list(ex["keys"]) == ["1"], ex
    raw = unb64(ex["keys"]["1"])
    assert len(raw) == 32
    ct = data_of(t.encrypt_data(name="exp", plaintext=b64(msg), mount_point=M))["ciphertext"]
    blob = unb64(ct.split(":", 2)[2])
    assert AESGCM(raw).decrypt(blob[:12], blob[12:], None) == msg
    ok_write(t.rotate_key(name="exp", mount_point=M))
    latest = data_of(t.export_key(name="exp", key_type="encryption-key", version="latest", mount_point=M))
    assert list(latest["keys"]) == ["2"], latest
    one = data_of(t.export_key(name="exp", key_type="encryption-key", version=1, mount_point=M))
    assert one["keys"] == {"1": ex["keys"]["1"]}, one
    hk = unb64(data_of(t.export_key(name="exp", key_type="hmac-key", version="latest", mount_point=M))["keys"]["2"])
    mac = data_of(t.generate_hmac(name="exp", hash_input=b64(msg), algorithm="sha2-512", mount_point=M))["hmac"]
    assert mac.startswith("vault:v2:"), mac
    assert unb64(mac.split(":", 2)[2]) == pyhmac.new(hk, msg, hashlib.sha512).digest()
    mac256 = data_of(t.generate_hmac(name="exp", hash_input=b64(msg), mount_point=M))["hmac"]
    assert unb64(mac256.split(":", 2)[2]) == pyhmac.new(hk, msg, hashlib.sha256).digest()
    assert data_of(t.verify_signed_data(name="exp", hash_input=b64(msg), hmac=mac256, mount_point=M))["valid"] is True
    assert data_of(t.verify_signed_data(name="exp", hash_input=b64(b"other"), hmac=mac256, mount_point=M))["valid"] is False
    ok_write(t.create_key(name="ed-exp", key_type="ed25519", exportable=True, mount_point=M))
    sk = data_of(t.export_key(name="ed-exp", key_type="signing-key", mount_point=M))["keys"]["1"]
    edpriv = ed25519.Ed25519PrivateKey.from_private_bytes(unb64(sk)[:32])
    edpub = unb64(data_of(t.read_key(name="ed-exp", mount_point=M))["keys"]["1"]["public_key"])
    assert edpriv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == edpub
    step("export_key/generate_hmac")

    # data keys
    dk = data_of(t.generate_data_key(name="exp", key_type="plaintext", mount_point=M))
    assert len(unb64(dk["plaintext"])) == 32 and dk["ciphertext"].startswith("vault:v2:") and dk["key_version"] == 2, dk
    assert data_of(t.decrypt_data(name="exp", ciphertext=dk["ciphertext"], mount_point=M))["plaintext"] == dk["plaintext"]
    dk512 = data_of(t.generate_data_key(name="exp", key_type="plaintext", bits=512, mount_point=M))
    assert len(unb64(dk512["plaintext"])) == 64, dk512
    wrapped = data_of(t.generate_data_key(name="exp", key_type="wrapped", bits=128, mount_point=M))
    assert "plaintext" not in wrapped or wrapped["plaintext"] in (None, ""), wrapped
    assert len(unb64(data_of(t.decrypt_data(name="exp", ciphertext=wrapped["ciphertext"], mount_point=M))["plaintext"])) == 16
    step("generate_data_key")

    # random bytes and hashes
    rb = data_of(t.generate_random_bytes(mount_point=M))["random_bytes"]
    assert len(unb64(rb)) == 32, rb
    rh = data_of(t.generate_random_bytes(n_bytes=16, output_format="hex", mount_point=M))["random_bytes"]
    assert len(bytes.fromhex(rh)) == 16, rh
    s = data_of(t.hash_data(hash_input=b64(msg), mount_point=M))["sum"]
    assert s == hashlib.sha256(msg).hexdigest(), s
    s = data_of(t.hash_data(hash_input=b64(msg), algorithm="sha2-384", output_format="base64", mount_point=M))["sum"]
    assert unb64(s) == hashlib.sha384(msg).digest(), s
    s = data_of(t.hash_data(hash_input=b64(msg), algorithm="sha2-224", mount_point=M))["sum"]
    assert s == hashlib.sha224(msg).hexdigest(), s
    step("generate_random_bytes/hash_data")

    # signatures, verified by the engine and by cryptography with the read public key
    def pub_of(name):
        return data_of(t.read_key(name=name, mount_point=M))["keys"]["1"]["public_key"]

    def sig_bytes(sig):
        assert sig.startswith("vault:v1:"), sig
        return unb64(sig.split(":", 2)[2])

    def check(name, sig, **kw):
        v = data_of(t.verify_signed_data(name=name, hash_input=b64(msg), signature=sig, mount_point=M, **kw))
        assert v["valid"] is True, (name, kw, v)
        v = data_of(t.verify_signed_data(name=name, hash_input=b64(b"tampered"), signature=sig, mount_point=M, **kw))
        assert v["valid"] is False, (name, kw, v)

    sig = data_of(t.sign_data(name="k-ed25519", hash_input=b64(msg), mount_point=M))
    assert sig["key_version"] == 1, sig
    ed25519.Ed25519PublicKey.from_public_bytes(unb64(pub_of("k-ed25519"))).verify(sig_bytes(sig["signature"]), msg)
    check("k-ed25519", sig["signature"])
    hashes_by_name = {"sha2-224": hashes.SHA224(), "sha2-256": hashes.SHA256(), "sha2-384": hashes.SHA384(), "sha2-512": hashes.SHA512()}
    for kt in ("ecdsa-p256", "ecdsa-p384", "ecdsa-p521"):
        name = "k-" + kt
        pub = serialization.load_pem_public_key(pub_of(name).encode())
        for alg, h in hashes_by_name.items():
            s = data_of(t.sign_data(name=name, hash_input=b64(msg), hash_algorithm=alg, mount_point=M))["signature"]
            pub.verify(sig_bytes(s), msg, ec.ECDSA(h))
            check(name, s, hash_algorithm=alg)
        # JWS marshaling: r || s, fixed width
        s = data_of(t.sign_data(name=name, hash_input=b64(msg), marshaling_algorithm="jws", mount_point=M))["signature"]
        body = s.split(":", 2)[2].rstrip("=")
        assert "+" not in body and "/" not in body, s
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        half = len(raw) // 2
        pub.verify(asym_utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")), msg, ec.ECDSA(hashes.SHA256()))
        v = data_of(t.verify_signed_data(name=name, hash_input=b64(msg), signature=s, marshaling_algorithm="jws", mount_point=M))
        assert v["valid"] is True, v
    for kt in ("rsa-2048", "rsa-3072", "rsa-4096"):
        name = "k-" + kt
        pub = serialization.load_pem_public_key(pub_of(name).encode())
        for alg in ("sha2-256", "sha2-512"):
            h = hashes_by_name[alg]
            s = data_of(t.sign_data(name=name, hash_input=b64(msg), hash_algorithm=alg, signature_algorithm="pkcs1v15", mount_point=M))["signature"]
            pub.verify(sig_bytes(s), msg, padding.PKCS1v15(), h)
            check(name, s, hash_algorithm=alg, signature_algorithm="pkcs1v15")
            s = data_of(t.sign_data(name=name, hash_input=b64(msg), hash_algorithm=alg, signature_algorithm="pss", mount_point=M))["signature"]
            pub.verify(sig_bytes(s), msg, padding.PSS(padding.MGF1(h), padding.PSS.AUTO), h)
            check(name, s, hash_algorithm=alg, signature_algorithm="pss")
        s = data_of(t.sign_data(name=name, hash_input=b64(msg), signature_algorithm="pss", salt_length="hash", mount_point=M))["signature"]
        pub.verify(sig_bytes(s), msg, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        check(name, s, signature_algorithm="pss", salt_length="hash")
        # Go's numeric spellings, which Vault takes too: -1 is the hash length, 0 is auto.
        s = data_of(t.sign_data(name=name, hash_input=b64(msg), signature_algorithm="pss", salt_length="-1", mount_point=M))["signature"]
        pub.verify(sig_bytes(s), msg, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        check(name, s, signature_algorithm="pss", salt_length="-1")
        s = data_of(t.sign_data(name=name, hash_input=b64(msg), signature_algorithm="pss", salt_length="0", mount_point=M))["signature"]
        pub.verify(sig_bytes(s), msg, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.MAX_LENGTH), hashes.SHA256())
        check(name, s, signature_algorithm="pss", salt_length="0")
        # Any other number is the exact salt length in bytes, up to what the key allows.
        s = data_of(t.sign_data(name=name, hash_input=b64(msg), signature_algorithm="pss", salt_length="1", mount_point=M))["signature"]
        pub.verify(sig_bytes(s), msg, padding.PSS(padding.MGF1(hashes.SHA256()), 1), hashes.SHA256())
        check(name, s, signature_algorithm="pss", salt_length="1")
        v = data_of(t.verify_signed_data(name=name, hash_input=b64(msg), signature=s, signature_algorithm="pss", salt_length="2", mount_point=M))
        assert v["valid"] is False, v
        too_long = str(pub.key_size // 8 - 32 - 1)
        try:
            t.sign_data(name=name, hash_input=b64(msg), signature_algorithm="pss", salt_length=too_long, mount_point=M)
            raise SystemExit("salt_length %s was accepted" % too_long)
        except hvac.exceptions.InvalidRequest as e:
            assert "salt_length" in str(e), e
        for bad_salt in ("-2", "foobar"):
            try:
                # hvac checks salt_length itself; the raw call shows what the server says.
                client.adapter.post("/v1/%s/sign/%s" % (M, name), json={"input": b64(msg), "signature_algorithm": "pss", "salt_length": bad_salt})
                raise SystemExit("salt_length %s was accepted" % bad_salt)
            except hvac.exceptions.InvalidRequest as e:
                assert "salt_length" in str(e), e
        # prehashed: the input is the digest
        digest = hashlib.sha256(msg).digest()
        s = data_of(t.sign_data(name=name, hash_input=b64(digest), prehashed=True, hash_algorithm="sha2-256", signature_algorithm="pkcs1v15", mount_point=M))["signature"]
        pub.verify(sig_bytes(s), msg, padding.PKCS1v15(), hashes.SHA256())
        # RSA keys encrypt too
        c = data_of(t.encrypt_data(name=name, plaintext=b64(msg), mount_point=M))["ciphertext"]
        assert unb64(data_of(t.decrypt_data(name=name, ciphertext=c, mount_point=M))["plaintext"]) == msg
    # batch signing (hvac sends "input": null next to batch_input)
    batch = data_of(t.sign_data(name="k-ecdsa-p256", batch_input=[{"input": b64(b"a")}, {"input": b64(b"b")}], mount_point=M))["batch_results"]
    assert len(batch) == 2 and all(x["signature"].startswith("vault:v1:") for x in batch), batch
    pub = serialization.load_pem_public_key(pub_of("k-ecdsa-p256").encode())
    pub.verify(sig_bytes(batch[1]["signature"]), b"b", ec.ECDSA(hashes.SHA256()))
    # a key that cannot sign
    expect_error(exceptions.InvalidRequest, t.sign_data, name="k-aes256-gcm96", hash_input=b64(msg), mount_point=M)
    try:
        pub.verify(sig_bytes(batch[0]["signature"]), b"b", ec.ECDSA(hashes.SHA256()))
        raise AssertionError("a signature of 'a' verified for 'b'")
    except InvalidSignature:
        pass
    step("sign_data/verify_signed_data")

    # backup and restore
    ct_exp = data_of(t.encrypt_data(name="exp", plaintext=b64(msg), mount_point=M))["ciphertext"]
    expect_error(exceptions.InvalidRequest, t.backup_key, name="k-aes256-gcm96", mount_point=M)
    bk = data_of(t.backup_key(name="exp", mount_point=M))["backup"]
    assert isinstance(bk, str) and len(bk) > 100
    ok_write(t.restore_key(backup=bk, name="exp-restored", mount_point=M))
    d = data_of(t.read_key(name="exp-restored", mount_point=M))
    assert d["latest_version"] == 2 and d["exportable"] is True, d
    assert unb64(data_of(t.decrypt_data(name="exp-restored", ciphertext=ct_exp, mount_point=M))["plaintext"]) == msg
    expect_error(exceptions.InvalidRequest, t.restore_key, backup=bk, name="exp-restored", mount_point=M, contains="already exists")
    ok_write(t.restore_key(backup=bk, name="exp-restored", force=True, mount_point=M))
    expect_error(exceptions.InvalidRequest, t.restore_key, backup=bk, mount_point=M, contains="already exists")
    expect_error(exceptions.InvalidRequest, t.restore_key, backup="bm90IGEgYmFja3Vw", name="junk", mount_point=M)
    expect_error(exceptions.InvalidPath, t.read_key, name="junk", mount_point=M)
    step("backup_key/restore_key")


# ---------------------------------------------------------------------------------------------
# ssh


def ssh():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    M = "hvac-ssh"
    s = client.secrets.ssh
    client.sys.enable_secrets_engine("ssh", path=M)
    step("mount")

    def keygen(kind, name):
        path = os.path.join(work, name)
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", path], check=True)
        with open(path + ".pub") as f:
            return path, f.read().strip()

    def cert_info(signed_key, name):
        path = os.path.join(work, name + "-cert.pub")
        with open(path, "w") as f:
            f.write(signed_key)
        out = subprocess.run(["ssh-keygen", "-L", "-f", path], check=True, capture_output=True, text=True).stdout
        return out

    # CA: generated (hvac's defaults: generate_signing_key=True, key_type ssh-rsa, key_bits 0)
    r = data_of(s.submit_ca_information(mount_point=M))
    pub = r["public_key"]
    assert pub.startswith("ssh-rsa "), r
    assert serialization.load_ssh_public_key(pub.encode()).key_size == 4096, "default CA is RSA-4096"
    read = data_of(s.read_public_key(mount_point=M))
    assert read["public_key"].strip() == pub.strip(), read
    raw = client.adapter.get(f"/v1/{M}/public_key")
    assert raw.text.strip() == pub.strip(), raw.text
    step("submit_ca_information/read_public_key")

    # a second write while a CA is configured is refused (Vault: delete first)
    expect_error(exceptions.InvalidRequest, s.submit_ca_information, mount_point=M)
    assert data_of(s.read_public_key(mount_point=M))["public_key"].strip() == pub.strip()
    no_content(s.delete_ca_information(mount_point=M))
    expect_error(exceptions.InvalidRequest, s.read_public_key, mount_point=M)
    # import our own CA (Ed25519, OpenSSH format) as hvac's users do
    ca_path, ca_pub = keygen("ed25519", "ca")
    with open(ca_path) as f:
        ca_priv = f.read()
    # generate_signing_key (hvac's default True) with keys given is a contradiction Vault refuses
    expect_error(exceptions.InvalidRequest, s.submit_ca_information, private_key=ca_priv, public_key=ca_pub, mount_point=M)
    expect_error(exceptions.InvalidRequest, s.read_public_key, mount_point=M)
    ok_write(s.submit_ca_information(private_key=ca_priv, public_key=ca_pub, generate_signing_key=False, mount_point=M))
    assert data_of(s.read_public_key(mount_point=M))["public_key"].split()[:2] == ca_pub.split()[:2]
    step("delete_ca_information/submit_ca_information import")

    # roles, created the way hvac sends them (every field, empty strings and nulls included)
    no_content(s.create_role(name="users", key_type="ca", allow_user_certificates=True, allowed_users="alice,bob", default_user="alice", allowed_extensions="permit-pty,permit-port-forwarding", default_extensions={"permit-pty": ""}, ttl="30m", max_ttl="2h", mount_point=M))
    d = data_of(s.read_role(name="users", mount_point=M))
    assert d["key_type"] == "ca" and d["allow_user_certificates"] is True and d["allow_host_certificates"] is False, d
    assert d["allowed_users"] == "alice,bob" and d["default_user"] == "alice", d
    assert d["default_extensions"] == {"permit-pty": ""}, d
    assert d["ttl"] == 1800 and d["max_ttl"] == 7200, d
    no_content(s.create_role(name="hosts", key_type="ca", allow_host_certificates=True, allowed_domains="example.com", allow_subdomains=True, mount_point=M))
    d = data_of(s.read_role(name="hosts", mount_point=M))
    assert d["allow_host_certificates"] is True and d["allow_subdomains"] is True and d["allowed_domains"] == "example.com", d
    no_content(s.create_role(name="otp", key_type="otp", default_user="ubuntu", cidr_list="10.0.0.0/24,192.168.1.0/24", exclude_cidr_list="10.0.0.128/25", mount_point=M))
    d = data_of(s.read_role(name="otp", mount_point=M))
    assert d["key_type"] == "otp" and d["default_user"] == "ubuntu" and d["port"] == 22, d
    assert d["cidr_list"] == "10.0.0.0/24,192.168.1.0/24" and d["exclude_cidr_list"] == "10.0.0.128/25", d
    expect_error(exceptions.InvalidRequest, s.create_role, name="bad", key_type="ca", mount_point=M)
    expect_error(exceptions.InvalidRequest, s.create_role, name="bad", key_type="nope", mount_point=M)
    expect_error(exceptions.InvalidPath, s.read_role, name="bad", mount_point=M)
    listed = data_of(s.list_roles(mount_point=M))
    assert sorted(listed["keys"]) == ["hosts", "otp", "users"], listed
    assert listed["key_info"]["otp"]["key_type"] == "otp", listed
    step("create_role/read_role/list_roles")

    # sign: a user certificate, read back with ssh-keygen
    _, user_pub = keygen("ed25519", "user")
    sd = data_of(s.sign_ssh_key(name="users", public_key=user_pub, valid_principals="bob", mount_point=M))
    assert isinstance(sd["serial_number"], str) and sd["serial_number"], sd
    assert sd["signed_key"].startswith("ssh-ed25519-cert-v01@openssh.com "), sd
    info = cert_info(sd["signed_key"], "user1")
    assert "Type: ssh-ed25519-cert-v01@openssh.com user certificate" in info, info
    assert "Principals: \n                bob\n" in info, info
    assert "permit-pty" in info and "Signing CA: ED25519" in info, info
    serial_line = [l for l in info.splitlines() if "Serial:" in l][0]
    # Vault's serial_number: the certificate's serial in lowercase hex, no leading zeros
    assert format(int(serial_line.split()[-1]), "x") == sd["serial_number"], (serial_line, sd)
    # defaults: principal = default_user, ttl = role's 30m
    sd = data_of(s.sign_ssh_key(name="users", public_key=user_pub, mount_point=M))
    info = cert_info(sd["signed_key"], "user2")
    assert "                alice\n" in info, info
    valid = [l for l in info.splitlines() if "Valid:" in l][0]
    start, end = valid.split("from ")[1].split(" to ")
    span = datetime.datetime.fromisoformat(end.strip()) - datetime.datetime.fromisoformat(start.strip())
    assert 1790 <= span.total_seconds() <= 1800 + 60, valid
    sd = data_of(s.sign_ssh_key(name="users", public_key=user_pub, ttl="1h", extensions={"permit-port-forwarding": ""}, mount_point=M))
    info = cert_info(sd["signed_key"], "user3")
    assert "permit-port-forwarding" in info and "permit-pty" not in info, info
    expect_error(exceptions.InvalidRequest, s.sign_ssh_key, name="users", public_key=user_pub, valid_principals="mallory", mount_point=M)
    expect_error(exceptions.InvalidRequest, s.sign_ssh_key, name="users", public_key=user_pub, cert_type="host", mount_point=M)
    expect_error(exceptions.InvalidRequest, s.sign_ssh_key, name="users", public_key=user_pub, extensions={"permit-X11-forwarding": ""}, mount_point=M)
    expect_error(exceptions.InvalidRequest, s.sign_ssh_key, name="users", public_key="ssh-ed25519 AAAAnotakey", mount_point=M)
    expect_error(exceptions.InvalidRequest, s.sign_ssh_key, name="otp", public_key=user_pub, mount_point=M)
    # a host certificate
    _, host_pub = keygen("ecdsa", "host")
    sd = data_of(s.sign_ssh_key(name="hosts", public_key=host_pub, cert_type="host", valid_principals="www.example.com", mount_point=M))
    info = cert_info(sd["signed_key"], "host1")
    assert "host certificate" in info and "www.example.com" in info, info
    expect_error(exceptions.InvalidRequest, s.sign_ssh_key, name="hosts", public_key=host_pub, cert_type="host", valid_principals="www.evil.com", mount_point=M)
    step("sign_ssh_key")

    # OTP mode: zero-address roles, credentials, lookup, verify (unauthenticated)
    assert sorted(data_of(s.list_roles_by_ip(ip="10.0.0.5", mount_point=M))["roles"]) == ["otp"]
    assert data_of(s.list_roles_by_ip(ip="10.0.0.200", mount_point=M))["roles"] == []
    expect_error(exceptions.InvalidRequest, s.list_roles_by_ip, ip="not-an-ip", mount_point=M)
    cr = client.secrets.ssh.generate_ssh_credentials(name="otp", username="ubuntu", ip="10.0.0.5", mount_point=M)
    cd = data_of(cr)
    assert cr["lease_id"].startswith(M + "/creds/otp/") and cr["renewable"] is False, cr
    assert cd["key_type"] == "otp" and cd["ip"] == "10.0.0.5" and cd["username"] == "ubuntu" and cd["port"] == 22, cd
    assert isinstance(cd["key"], str) and len(cd["key"]) >= 16, cd
    expect_error(exceptions.InvalidRequest, s.generate_ssh_credentials, name="otp", username="ubuntu", ip="10.0.0.200", mount_point=M)
    expect_error(exceptions.InvalidRequest, s.generate_ssh_credentials, name="otp", username="root", ip="10.0.0.5", mount_point=M)
    anon = hvac.Client(url=ADDR, timeout=30)
    v = data_of(anon.secrets.ssh.verify_ssh_otp(otp=cd["key"], mount_point=M))
    assert v["ip"] == "10.0.0.5" and v["username"] == "ubuntu" and v["role_name"] == "otp", v
    expect_error(exceptions.InvalidRequest, anon.secrets.ssh.verify_ssh_otp, otp=cd["key"], mount_point=M)
    # zero address: the role now takes any address outside its exclusions
    expect_error(exceptions.InvalidRequest, s.configure_zeroaddress_roles, roles="missing", mount_point=M)
    no_content(s.configure_zeroaddress_roles(roles="otp", mount_point=M))
    z = data_of(s.list_zeroaddress_roles(mount_point=M))
    assert z["roles"] == ["otp"], z
    assert data_of(s.list_roles_by_ip(ip="172.16.0.9", mount_point=M))["roles"] == ["otp"]
    data_of(s.generate_ssh_credentials(name="otp", username="ubuntu", ip="172.16.0.9", mount_point=M))
    no_content(s.delete_zeroaddress_role(mount_point=M))
    assert data_of(s.list_roles_by_ip(ip="172.16.0.9", mount_point=M))["roles"] == []
    expect_error(exceptions.InvalidPath, s.list_zeroaddress_roles, mount_point=M)
    step("generate_ssh_credentials/verify_ssh_otp/zeroaddress/list_roles_by_ip")

    # The dynamic-key mode was removed from Vault (1.13): keys/ is not a path.
    expect_error(exceptions.InvalidPath, s.create_or_update_key, name="k", key="x", mount_point=M)
    expect_error(exceptions.InvalidPath, s.delete_key, name="k", mount_point=M)
    step("create_or_update_key/delete_key removed")

    no_content(s.delete_role(name="hosts", mount_point=M))
    expect_error(exceptions.InvalidPath, s.read_role, name="hosts", mount_point=M)
    assert sorted(data_of(s.list_roles(mount_point=M))["keys"]) == ["otp", "users"]
    step("delete_role")


# ---------------------------------------------------------------------------------------------
# database


def database():
    M = "hvac-db"
    db = client.secrets.database
    port = os.environ["PGPORT"]
    sock = os.environ["PGSOCKDIR"]
    client.sys.enable_secrets_engine("database", path=M)
    step("mount")

    def psql_admin(sql):
        out = subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", sock, "-p", port, "-U", "admin", "-d", "app", "-tAc", sql],
            capture_output=True, text=True, timeout=30,
        )
        assert out.returncode == 0, out
        return out.stdout.strip()

    def as_user(user, password, sql):
        env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="10")
        return subprocess.run(
            ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", port, "-U", user, "-d", "app", "-tAc", sql],
            capture_output=True, text=True, timeout=30, env=env,
        )

    url = f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{port}/app?sslmode=disable"
    # unreachable database: refused, nothing stored
    expect_error(
        exceptions.InvalidRequest, db.configure, name="pg", plugin_name="postgresql-database-plugin",
        connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:1/app?sslmode=disable",
        username="admin", password=os.environ["PGADMIN_PW"], allowed_roles=["*"], mount_point=M,
    )
    expect_error(exceptions.InvalidPath, db.read_connection, name="pg", mount_point=M)
    ok_write(db.configure(
        name="pg", plugin_name="postgresql-database-plugin", connection_url=url,
        username="admin", password=os.environ["PGADMIN_PW"],
        allowed_roles=["readonly", "svc-static"], mount_point=M,
    ))
    c = data_of(db.read_connection(name="pg", mount_point=M))
    assert c["plugin_name"] == "postgresql-database-plugin", c
    assert c["allowed_roles"] == ["readonly", "svc-static"], c
    det = c["connection_details"]
    assert det["connection_url"] == url and det["username"] == "admin", det
    assert "password" not in det and os.environ["PGADMIN_PW"] not in json.dumps(c), c
    assert c["root_credentials_rotate_statements"] == [] and c["password_policy"] == "", c
    assert c["verify_connection"] is True, c
    assert keys_of(db.list_connections(mount_point=M)) == ["pg"]
    no_content(db.reset_connection(name="pg", mount_point=M))
    expect_error(exceptions.InvalidRequest, db.reset_connection, name="nope", mount_point=M)
    step("configure/read_connection/list_connections/reset_connection")

    # dynamic role: the user works, can SELECT in data, cannot INSERT, is dropped on revoke
    creation = [
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        "GRANT USAGE ON SCHEMA data TO \"{{name}}\"; GRANT SELECT ON ALL TABLES IN SCHEMA data TO \"{{name}}\";",
    ]
    no_content(db.create_role(name="readonly", db_name="pg", creation_statements=creation, default_ttl="1h", max_ttl=86400, mount_point=M))
    r = data_of(db.read_role(name="readonly", mount_point=M))
    assert r["db_name"] == "pg" and r["creation_statements"] == creation, r
    assert r["default_ttl"] == 3600 and r["max_ttl"] == 86400, r
    assert r["revocation_statements"] == [] and r["rollback_statements"] == [] and r["renew_statements"] == [], r
    assert r["credential_type"] == "password", r
    assert keys_of(db.list_roles(mount_point=M)) == ["readonly"]
    expect_error(exceptions.InvalidPath, db.read_role, name="nope", mount_point=M)
    # a role outside allowed_roles cannot get credentials
    no_content(db.create_role(name="other", db_name="pg", creation_statements=creation, mount_point=M))
    expect_error(exceptions.InvalidRequest, db.create_role, name="bad", db_name="pg", creation_statements=creation, default_ttl="not a ttl", mount_point=M)
    expect_error(exceptions.InvalidPath, db.read_role, name="bad", mount_point=M)
    step("create_role/read_role/list_roles")

    cr = db.generate_credentials(name="readonly", mount_point=M)
    cd = data_of(cr)
    assert cr["lease_id"].startswith(M + "/creds/readonly/") and cr["renewable"] is True, cr
    assert cr["lease_duration"] == 3600, cr
    user, pw = cd["username"], cd["password"]
    assert isinstance(user, str) and isinstance(pw, str) and len(pw) >= 20, cd
    o = as_user(user, pw, "SELECT count(*) FROM data.items")
    assert o.returncode == 0 and o.stdout.strip() == "2", o
    o = as_user(user, pw, "INSERT INTO data.items VALUES (3)")
    assert o.returncode != 0 and "permission denied" in o.stderr, o
    expect_error(exceptions.Forbidden, db.generate_credentials, name="other", mount_point=M)
    client.sys.revoke_lease(cr["lease_id"])
    assert psql_admin(f"SELECT count(*) FROM pg_roles WHERE rolname = '{user}'") == "0"
    step("generate_credentials")

    # static role: creating it rotates the password at once; rotate changes it again
    no_content(db.create_static_role(
        name="svc-static", db_name="pg", username="svc",
        rotation_statements=["ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';"],
        rotation_period=86400, mount_point=M,
    ))
    o = as_user("svc", "svc-initial", "SELECT 1")
    assert o.returncode != 0, "the initial password still works after the static role was created"
    sr = data_of(db.read_static_role(name="svc-static", mount_point=M))
    assert sr["db_name"] == "pg" and sr["username"] == "svc" and sr["rotation_period"] == 86400, sr
    assert sr["rotation_statements"] == ["ALTER USER \"{{name}}\" WITH PASSWORD '{{password}}';"], sr
    lvr = sr["last_vault_rotation"]
    assert isinstance(lvr, str) and abs(datetime.datetime.fromisoformat(lvr.replace("Z", "+00:00")).timestamp() - time.time()) < 300, sr
    assert sr["credential_type"] == "password", sr
    assert keys_of(db.list_static_roles(mount_point=M)) == ["svc-static"]
    sc = data_of(db.get_static_credentials(name="svc-static", mount_point=M))
    assert sc["username"] == "svc" and sc["rotation_period"] == 86400, sc
    assert isinstance(sc["ttl"], int) and 86000 < sc["ttl"] <= 86400, sc
    assert isinstance(sc["last_vault_rotation"], str), sc
    o = as_user("svc", sc["password"], "SELECT current_user")
    assert o.returncode == 0 and o.stdout.strip() == "svc", o
    expect_error(exceptions.InvalidRequest, db.create_static_role, name="short", db_name="pg", username="svc", rotation_statements=[], rotation_period=1, mount_point=M)
    expect_error(exceptions.InvalidPath, db.read_static_role, name="short", mount_point=M)
    step("create_static_role/read_static_role/list_static_roles/get_static_credentials")

    no_content(db.rotate_static_role_credentials(name="svc-static", mount_point=M))
    sc2 = data_of(db.get_static_credentials(name="svc-static", mount_point=M))
    assert sc2["password"] != sc["password"], "rotate-role left the password"
    assert as_user("svc", sc["password"], "SELECT 1").returncode != 0
    assert as_user("svc", sc2["password"], "SELECT 1").returncode == 0
    expect_error(exceptions.InvalidRequest, db.rotate_static_role_credentials, name="nope", mount_point=M)
    step("rotate_static_role_credentials")

    # root rotation: the old admin password stops working, the engine still works
    no_content(db.rotate_root_credentials(name="pg", mount_point=M))
    assert as_user("admin", os.environ["PGADMIN_PW"], "SELECT 1").returncode != 0, "old root password still works"
    cr = db.generate_credentials(name="readonly", mount_point=M)
    assert as_user(cr["data"]["username"], cr["data"]["password"], "SELECT 1").returncode == 0
    client.sys.revoke_lease(cr["lease_id"])
    assert os.environ["PGADMIN_PW"] not in json.dumps(db.read_connection(name="pg", mount_point=M))
    step("rotate_root_credentials")

    no_content(db.delete_static_role(name="svc-static", mount_point=M))
    expect_error(exceptions.InvalidPath, db.read_static_role, name="svc-static", mount_point=M)
    expect_error(exceptions.InvalidPath, db.list_static_roles, mount_point=M)
    no_content(db.delete_role(name="readonly", mount_point=M))
    no_content(db.delete_role(name="other", mount_point=M))
    expect_error(exceptions.InvalidPath, db.read_role, name="readonly", mount_point=M)
    expect_error(exceptions.InvalidPath, db.list_roles, mount_point=M)
    no_content(db.delete_connection(name="pg", mount_point=M))
    expect_error(exceptions.InvalidPath, db.read_connection, name="pg", mount_point=M)
    expect_error(exceptions.InvalidPath, db.list_connections, mount_point=M)
    step("delete_static_role/delete_role/delete_connection")


{"transit": transit, "ssh": ssh, "database": database}[os.environ["ENGINE"]]()
print("ALL OK", flush=True)
