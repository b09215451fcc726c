"""Issue 20: a 10/s rate-limit quota on secret/ under a 50/s load gives 429s (with Vault's
headers when enabled) while sys/health stays 200; every matching quota holds; buckets are per
client address. Driven by operations.rs against a real server."""
import http.client
import json
import os
import time
import urllib.parse

ADDR = urllib.parse.urlparse(os.environ["VAULT_ADDR"])
TOKEN = os.environ["VAULT_TOKEN"]


def call(method, path, body=None, source="127.0.0.1"):
    c = http.client.HTTPConnection(ADDR.hostname, ADDR.port, timeout=20, source_address=(source, 0))
    c.request(method, "/v1/" + path, body=None if body is None else json.dumps(body),
              headers={"X-Vault-Token": TOKEN})
    r = c.getresponse()
    data = r.read().decode()
    headers = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, data, headers


def ok(code, body):
    assert code in (200, 204), (code, body)


ok(*call("POST", "secret/data/q", {"data": {"v": 1}})[:2])
ok(*call("POST", "sys/quotas/rate-limit/ten", {"path": "secret/", "rate": 10, "interval": "1s"})[:2])
ok(*call("POST", "sys/quotas/config", {"enable_rate_limit_response_headers": True})[:2])
code, body, _ = call("GET", "sys/quotas/rate-limit/ten")
d = json.loads(body)["data"]
assert (d["path"], d["rate"], d["interval"], d["type"]) == ("secret/", 10, 1, "rate-limit"), d

# 50 requests a second for 4 seconds, sys/health checked after every fifth.
statuses = {}
health = []
limited = None
allowed_headers = None
start = time.monotonic()
for i in range(200):
    target = start + i / 50.0
    now = time.monotonic()
    if target > now:
        time.sleep(target - now)
    code, body, h = call("GET", "secret/data/q")
    statuses[code] = statuses.get(code, 0) + 1
    if code == 429 and limited is None:
        limited = (body, h)
    if code == 200 and allowed_headers is None:
        allowed_headers = h
    if i % 5 == 4:
        health.append(call("GET", "sys/health")[0])
elapsed = time.monotonic() - start
print("statuses", statuses, "in %.2fs" % elapsed)
assert set(statuses) <= {200, 429}, statuses
# A full bucket of 10, then 10 a second.
assert 30 <= statuses.get(200, 0) <= 10 + 10 * elapsed + 2, statuses
assert statuses.get(429, 0) >= 140, statuses
assert health and all(c == 200 for c in health), health
print("OK 429s under a 50/s load while sys/health stays 200")

body, h = limited
assert json.loads(body)["errors"] == ['request path "secret/data/q": rate limit quota exceeded'], body
assert h["x-ratelimit-limit"] == "10", h
assert h["x-ratelimit-remaining"] == "0", h
assert int(h["x-ratelimit-reset"]) >= int(time.time()) - 5, h
assert int(h["retry-after"]) >= 1, h
assert allowed_headers["x-ratelimit-limit"] == "10" and "retry-after" not in allowed_headers, allowed_headers
print("OK headers")

# Another client address has its own bucket.
while call("GET", "secret/data/q")[0] == 200:
    pass
assert call("GET", "secret/data/q", source="127.0.0.2")[0] == 200
print("OK per client address")

# Headers off: still 429, no headers.
ok(*call("POST", "sys/quotas/config", {"enable_rate_limit_response_headers": False})[:2])
code, _, h = call("GET", "secret/data/q")
assert code == 429 and "x-ratelimit-limit" not in h and "retry-after" not in h, (code, h)
print("OK headers only when enabled")

# A second, tighter quota on the same paths (a glob) holds too; other paths are untouched.
ok(*call("POST", "sys/quotas/rate-limit/three", {"path": "secret/data/*", "rate": 3, "block_interval": "2s"})[:2])
time.sleep(1.2)
codes = [call("GET", "secret/data/q", source="127.0.0.3")[0] for _ in range(12)]
assert codes.count(200) == 3 and codes.count(429) == 9, codes
# block_interval: refused for 2 s, although the 10/s quota and the 3/s bucket refill sooner.
time.sleep(1.0)
assert call("GET", "secret/data/q", source="127.0.0.3")[0] == 429
time.sleep(1.3)
assert call("GET", "secret/data/q", source="127.0.0.3")[0] == 200
assert all(call("GET", "sys/mounts", source="127.0.0.3")[0] == 200 for _ in range(20))
code, body, _ = call("LIST", "sys/quotas/rate-limit")
assert json.loads(body)["data"]["keys"] == ["ten", "three"], body
print("OK several quotas on one path, globs, block_interval")

# Deleting the quotas lifts the limits.
ok(*call("DELETE", "sys/quotas/rate-limit/ten")[:2])
ok(*call("DELETE", "sys/quotas/rate-limit/three")[:2])
assert all(call("GET", "secret/data/q")[0] == 200 for _ in range(30))
print("ALL OK")
