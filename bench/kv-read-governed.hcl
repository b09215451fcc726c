# Issue 18: kv-read with a non-root token under three EGPs on the mount and one RGP on the
# token, all matching and passing; compare with kv-read -non-root in the same run (target:
# at least 85% of its throughput). Tresor only (OpenBao has no governing policies).
test "kv-read" "governed" {
  weight = 1
  config {
    non_root  = true
    governing = true
  }
}
