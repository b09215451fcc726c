# bench/compare.sh's kv-read-identity-plain row: kv-read with a token acting for an identity
# entity and holding three plain policies (issue 13: three templated policies cost at most 10%
# over three plain ones).
test "kv-read" "identity-plain" {
  weight = 1
  config {
    identity_policies = "plain"
  }
}
