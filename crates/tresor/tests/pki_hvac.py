"""hvac's PKI calls against a running Tresor (driven by tests/pki_clients.rs).

Environment: VAULT_ADDR, VAULT_TOKEN, WORKDIR (a scratch directory with openssl on PATH).
Every call goes through hvac's public API exactly as a user's script would; each result is
checked against the certificate itself (parsed with `cryptography`), not against fixed strings.
Prints "OK <step>" lines and exits non-zero on the first failure.
"""

import datetime
import os
import subprocess
import sys
import time

import hvac
from cryptography import x509
from cryptography.x509.oid import NameOID, ExtensionOID

MOUNT = "hvac-pki"
work = os.environ["WORKDIR"]
client = hvac.Client(url=os.environ["VAULT_ADDR"], token=os.environ["VAULT_TOKEN"], timeout=20)
pki = client.secrets.pki


def step(name):
    print("OK", name, flush=True)


def cert_of(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def cn_of(cert):
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


client.sys.enable_secrets_engine("pki", path=MOUNT)
client.sys.tune_mount_configuration(path=MOUNT, max_lease_ttl="87600h")
step("mount")

root = pki.generate_root(
    type="internal",
    common_name="hvac root",
    extra_params={"ttl": "87600h", "key_type": "ec", "key_bits": 256, "issuer_name": "root-a"},
    mount_point=MOUNT,
)
root_pem = root["data"]["certificate"]
root_cert = cert_of(root_pem)
assert cn_of(root_cert) == "hvac root", root_cert.subject
assert "private_key" not in root["data"], "internal root must not export its key"
step("generate_root")

ca_pem = pki.read_ca_certificate(mount_point=MOUNT)
assert cert_of(ca_pem) == root_cert, "read_ca_certificate is not the root"
chain = pki.read_ca_certificate_chain(mount_point=MOUNT)
assert cert_of(chain) == root_cert, chain
step("read_ca_certificate")

base = os.environ["VAULT_ADDR"] + "/v1/" + MOUNT
pki.set_urls(
    {"issuing_certificates": [base + "/ca"], "crl_distribution_points": [base + "/crl"]},
    mount_point=MOUNT,
)
urls = pki.read_urls(mount_point=MOUNT)["data"]
assert urls["issuing_certificates"] == [base + "/ca"], urls
assert urls["crl_distribution_points"] == [base + "/crl"], urls
step("set_urls/read_urls")

pki.create_or_update_role(
    "web",
    {"allowed_domains": ["example.com"], "allow_subdomains": True, "max_ttl": "72h", "key_type": "ec"},
    mount_point=MOUNT,
)
role = pki.read_role("web", mount_point=MOUNT)["data"]
assert role["allowed_domains"] == ["example.com"] and role["allow_subdomains"] is True, role
assert "web" in pki.list_roles(mount_point=MOUNT)["data"]["keys"]
step("create_or_update_role/read_role/list_roles")

issued = pki.generate_certificate(
    "web", "www.example.com", extra_params={"ttl": "1h", "alt_names": "api.example.com"}, mount_point=MOUNT
)["data"]
leaf = cert_of(issued["certificate"])
assert cn_of(leaf) == "www.example.com"
sans = leaf.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
assert set(sans.get_values_for_type(x509.DNSName)) == {"www.example.com", "api.example.com"}, sans
life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
assert datetime.timedelta(minutes=59) < life <= datetime.timedelta(hours=1, minutes=1), life
cdp = leaf.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
assert [n.value for p in cdp for n in p.full_name] == [base + "/crl"], cdp
leaf.verify_directly_issued_by(root_cert)
assert issued["issuing_ca"].strip() == root_pem.strip()
assert issued["private_key_type"] == "ec"
serial = issued["serial_number"]
assert int(serial.replace(":", ""), 16) == leaf.serial_number, serial
step("generate_certificate")

# A role for example.com never issues for another domain.
try:
    pki.generate_certificate("web", "www.evil.com", mount_point=MOUNT)
    raise AssertionError("issued a certificate for evil.com")
except hvac.exceptions.InvalidRequest as e:
    assert "evil.com" in str(e), e
step("generate_certificate refuses other domains")

key = os.path.join(work, "csr.key")
csr_path = os.path.join(work, "req.csr")
subprocess.run(
    ["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
     "-keyout", key, "-out", csr_path, "-subj", "/CN=csr.example.com"],
    check=True, capture_output=True, timeout=20,
)
csr = open(csr_path).read()
signed = pki.sign_certificate("web", csr, "csr.example.com", mount_point=MOUNT)["data"]
signed_cert = cert_of(signed["certificate"])
assert cn_of(signed_cert) == "csr.example.com"
signed_cert.verify_directly_issued_by(root_cert)
assert "private_key" not in signed, "sign must not return a key"
step("sign_certificate")

verbatim = pki.sign_verbatim(csr, mount_point=MOUNT)["data"]
assert cn_of(cert_of(verbatim["certificate"])) == "csr.example.com"
step("sign_verbatim")

listed = pki.list_certificates(mount_point=MOUNT)["data"]["keys"]
assert serial in listed and signed["serial_number"] in listed, listed
read = pki.read_certificate(serial, mount_point=MOUNT)["data"]
assert cert_of(read["certificate"]) == leaf
step("list_certificates/read_certificate")

revoked = pki.revoke_certificate(serial, mount_point=MOUNT)["data"]
assert revoked["revocation_time"] > 0, revoked
crl_pem = pki.read_crl(mount_point=MOUNT)
crl = x509.load_pem_x509_crl(crl_pem.encode()) if "BEGIN" in crl_pem else None
if crl is None:
    raise AssertionError("read_crl did not return a PEM CRL: %r" % crl_pem[:80])
assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
assert crl.is_signature_valid(root_cert.public_key())
step("revoke_certificate/read_crl")

cfg = pki.read_crl_configuration(mount_point=MOUNT)["data"]
assert cfg["disable"] is False, cfg
pki.set_crl_configuration(expiry="48h", mount_point=MOUNT)
assert pki.read_crl_configuration(mount_point=MOUNT)["data"]["expiry"] == "48h"
assert pki.rotate_crl(mount_point=MOUNT)["data"]["success"] is True
crl = x509.load_pem_x509_crl(pki.read_crl(mount_point=MOUNT).encode())
assert datetime.timedelta(hours=47) < crl.next_update_utc - crl.last_update_utc <= datetime.timedelta(hours=48)
assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
step("crl configuration/rotate_crl")

tidy = pki.tidy(extra_params={"tidy_cert_store": True, "tidy_revoked_certs": True}, mount_point=MOUNT)
# Vault answers a started tidy with 202 Accepted (hvac's own test checks the status code), so
# hvac hands back the response itself rather than its JSON.
assert tidy.status_code == 202, tidy
assert any("Tidy operation successfully started" in w for w in tidy.json()["warnings"]), tidy.text
for _ in range(100):
    status = client.read(MOUNT + "/tidy-status")["data"]
    if status["state"] != "Running":
        break
    time.sleep(0.05)
assert status["state"] == "Finished" and status["tidy_cert_store"] is True, status
# Nothing has expired: every stored certificate is still there.
assert status["cert_store_deleted_count"] == 0, status
assert serial in pki.list_certificates(mount_point=MOUNT)["data"]["keys"]
step("tidy")

issuers = pki.list_issuers(mount_point=MOUNT)["data"]["keys"]
assert root["data"]["issuer_id"] in issuers, issuers
issuer = pki.read_issuer("root-a", mount_point=MOUNT)["data"]
assert issuer["issuer_id"] == root["data"]["issuer_id"], issuer
pki.update_issuer("root-a", extra_params={"leaf_not_after_behavior": "truncate"}, mount_point=MOUNT)
assert pki.read_issuer("root-a", mount_point=MOUNT)["data"]["leaf_not_after_behavior"] == "truncate"
step("list_issuers/read_issuer/update_issuer")

# An intermediate in a second mount: generate_intermediate, sign_intermediate, set_signed.
INT = "hvac-pki-int"
client.sys.enable_secrets_engine("pki", path=INT)
gen = pki.generate_intermediate("internal", "hvac intermediate", extra_params={"key_type": "ec"}, mount_point=INT)
int_csr = gen["data"]["csr"]
assert "BEGIN CERTIFICATE REQUEST" in int_csr
sig = pki.sign_intermediate(int_csr, "hvac intermediate", extra_params={"ttl": "8760h"}, mount_point=MOUNT)["data"]
int_cert = cert_of(sig["certificate"])
int_cert.verify_directly_issued_by(root_cert)
bc = int_cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
assert bc.ca is True, bc
pki.set_signed_intermediate(sig["certificate"], mount_point=INT)
pki.create_or_update_role("any", {"allow_any_name": True}, mount_point=INT)
assert cert_of(pki.read_ca_certificate(mount_point=INT)) == int_cert
step("generate_intermediate/sign_intermediate/set_signed_intermediate")

# sign_self_issued: re-sign a self-issued CA certificate (here the intermediate mount's own
# key, self-issued with openssl) with the root.
si_key = os.path.join(work, "si.key")
si_crt = os.path.join(work, "si.crt")
subprocess.run(
    ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
     "-keyout", si_key, "-out", si_crt, "-days", "30", "-subj", "/CN=hvac root",
     "-addext", "basicConstraints=critical,CA:true"],
    check=True, capture_output=True, timeout=20,
)
si = pki.sign_self_issued(open(si_crt).read(), mount_point=MOUNT)["data"]
si_cert = cert_of(si["certificate"])
si_cert.verify_directly_issued_by(root_cert)
assert si_cert.public_key() == cert_of(open(si_crt).read()).public_key()
step("sign_self_issued")

# Revoke the intermediate's issuer record in its own mount, then delete it.
int_issuers = pki.list_issuers(mount_point=INT)["data"]["keys"]
int_id = [i for i in int_issuers if cert_of(pki.read_issuer(i, mount_point=INT)["data"]["certificate"]) == int_cert][0]
rev = pki.revoke_issuer(int_id, mount_point=INT)["data"]
assert rev["revoked"] is True, rev
assert pki.read_issuer(int_id, mount_point=INT)["data"]["revoked"] is True
try:
    pki.generate_certificate("any", "x.example.com", mount_point=INT)
    raise AssertionError("a revoked issuer issued a certificate")
except hvac.exceptions.InvalidRequest as e:
    assert "revoked" in str(e), e
# Its parent lives in another mount: revoking it there puts it on the root's CRL.
pki.revoke_certificate(sig["serial_number"], mount_point=MOUNT)
root_crl = x509.load_pem_x509_crl(pki.read_crl(mount_point=MOUNT).encode())
assert root_crl.get_revoked_certificate_by_serial_number(int_cert.serial_number) is not None
pki.delete_issuer(int_id, mount_point=INT)
try:
    keys = pki.list_issuers(mount_point=INT)["data"]["keys"]
except hvac.exceptions.InvalidPath:  # an empty list is a 404, as in Vault
    keys = []
assert int_id not in keys, keys
step("revoke_issuer/delete_issuer")

pki.delete_role("web", mount_point=MOUNT)
try:
    pki.read_role("web", mount_point=MOUNT)
    raise AssertionError("role still readable after delete")
except hvac.exceptions.InvalidPath:
    pass
pki.delete_root(mount_point=MOUNT)
try:
    pki.list_issuers(mount_point=MOUNT)
    raise AssertionError("issuers remain after delete_root")
except hvac.exceptions.InvalidPath:
    pass
step("delete_role/delete_root")
print("ALL OK")
