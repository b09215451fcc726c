# bench/compare.sh's kv-write-same-key row: every client writes the same KV v2 secret, so the
# writes contend for one key (issue 11: writes to one key must share group commits).
test "kv-write" "same-key" {
  weight = 1
  config {
    numkvs = 1
  }
}
