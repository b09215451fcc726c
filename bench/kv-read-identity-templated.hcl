# bench/compare.sh's kv-read-identity-templated row: kv-read with a token acting for an identity
# entity and holding three templated policies (issue 13: three templated policies cost at most 10%
# over three plain ones).
test "kv-read" "identity-templated" {
  weight = 1
  config {
    identity_policies = "templated"
  }
}
