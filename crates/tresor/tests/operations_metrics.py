"""Issue 20: a Prometheus scrape of sys/metrics parses with prometheus-client's parser and
counts the requests sent. Driven by operations.rs against a real server: VAULT_ADDR is a
listener that needs a token, METRICS_ADDR one with unauthenticated_metrics_access."""
import json
import math
import os
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

ADDR = os.environ["VAULT_ADDR"]
METRICS = os.environ["METRICS_ADDR"]
TOKEN = os.environ["VAULT_TOKEN"]
N = int(os.environ.get("N", "100"))


def call(method, url, body=None, token=TOKEN):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}


def scrape():
    code, text, headers = call("GET", METRICS + "/v1/sys/metrics?format=prometheus", token=None)
    assert code == 200, (code, text)
    assert headers["content-type"].startswith("text/plain"), headers
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    return fams, text


def count(fams, name):
    f = fams.get(name)
    if f is None:
        return 0
    return sum(s.value for s in f.samples if s.name == name + "_count")


before, _ = scrape()
print("OK the scrape parses")
for i in range(N):
    code, text, _ = call("POST", ADDR + "/v1/secret/data/m%d" % (i % 10), {"data": {"i": i}})
    assert code == 200, (code, text)
    code, text, _ = call("GET", ADDR + "/v1/secret/data/m%d" % (i % 10))
    assert code == 200, (code, text)
time.sleep(1.2)  # usage_gauge_period = "1s": the gauges are recomputed
after, text = scrape()

# Counters match the requests sent: the scrapes themselves bypass the pipeline.
hr = count(after, "vault_core_handle_request") - count(before, "vault_core_handle_request")
assert hr == 2 * N, (hr, 2 * N)
reads = count(after, "vault_route_read_secret_") - count(before, "vault_route_read_secret_")
assert reads == N, reads
writes = sum(count(after, "vault_route_%s_secret_" % op) - count(before, "vault_route_%s_secret_" % op) for op in ("create", "update"))
assert writes == N, writes
print("OK counters match the requests sent")

f = after["vault_core_handle_request"]
assert f.type == "summary", f.type
qs = {s.labels["quantile"]: s.value for s in f.samples if "quantile" in s.labels}
assert set(qs) == {"0.5", "0.9", "0.99"}, qs
assert all(math.isfinite(v) and v > 0 for v in qs.values()), qs
assert qs["0.5"] <= qs["0.9"] <= qs["0.99"], qs
# Milliseconds: a request on an idle test server takes well under ten seconds and over a microsecond.
assert 0.001 < qs["0.5"] < 10000, qs
print("OK vault_core_handle_request quantiles", qs)

for name in ["vault_core_check_token", "vault_core_fetch_acl_and_token", "vault_barrier_get", "vault_barrier_put",
             "vault_barrier_list", "vault_token_lookup", "vault_embedded_get", "vault_embedded_put"]:
    assert after[name].type == "summary" and count(after, name) > 0, name


def gauge(fams, name, labels=None):
    f = fams[name]
    for s in f.samples:
        if labels is None or all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError((name, labels, f.samples))


assert gauge(after, "vault_core_unsealed") == 1
assert gauge(after, "vault_core_active") == 1
assert gauge(after, "vault_secret_kv_count", {"mount_point": "secret/"}) == 10
assert gauge(after, "vault_token_count") >= 1
assert gauge(after, "vault_token_count_by_policy", {"policy": "root"}) >= 1
assert gauge(after, "vault_runtime_sys_bytes") > 1_000_000
assert gauge(after, "vault_core_in_flight_requests") >= 0
print("OK gauges")

# The token listener: a token is needed; the JSON form is Vault's.
code, _, _ = call("GET", ADDR + "/v1/sys/metrics?format=prometheus", token=None)
assert code == 403, code
code, body, _ = call("GET", ADDR + "/v1/sys/metrics")
assert code == 200, code
j = json.loads(body)
assert set(j) >= {"Timestamp", "Gauges", "Counters", "Samples", "Points"}, j.keys()
hr = [s for s in j["Samples"] if s["Name"] == "vault.core.handle_request"]
assert hr and hr[0]["Count"] >= 2 * N and hr[0]["Mean"] > 0, hr
assert any(g["Name"] == "vault.core.unsealed" and g["Value"] == 1 for g in j["Gauges"]), j["Gauges"]
print("OK the JSON form")
# The unauthenticated listener opens sys/metrics only.
code, _, _ = call("GET", METRICS + "/v1/sys/mounts", token=None)
assert code == 403, code
code, body, _ = call("GET", METRICS + "/v1/sys/metrics?format=xml", token=None)
assert code == 400, (code, body)
print("ALL OK")
