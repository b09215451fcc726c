package tresor.pki_key_strength_test

import rego.v1

import data.tresor.pki_key_strength

# A real P-224 CSR (openssl req -newkey ec -pkeyopt ec_paramgen_curve:secp224r1).
p224 := `-----BEGIN CERTIFICATE REQUEST-----
MIHEMHMCAQAwHDEaMBgGA1UEAwwRc21hbGwuZXhhbXBsZS5jb20wTjAQBgcqhkjO
PQIBBgUrgQQAIQM6AARyeS76x5uIlcYBsCGKMBu1pcwcYp4scdi5nWWZ3A/FNUbc
y/PYyyzRujzQM2ZeWHriBQpPRRX0uaAAMAoGCCqGSM49BAMCA0EAMD4CHQCZeALT
lX9Y/8t4Tlw+BBlnZlLmHg8QVwnB0n3lAh0A+PucT7PiAQHEXzlOrFUeDRYVXDs8
hyZmerWYQw==
-----END CERTIFICATE REQUEST-----`

sign(csr) := {"request": {"path": "pki/sign/web", "operation": "update", "data": {"csr": csr}}}

test_small_ec_key_is_refused if {
	not pki_key_strength.main with input as sign(p224)
	pki_key_strength.deny == {"ec keys must have at least 256 bits; this CSR has 224"} with input as sign(p224)
}

test_issue_without_csr_is_allowed if {
	pki_key_strength.main with input as {"request": {"path": "pki/issue/web", "data": {"common_name": "a.example.com"}}}
}

# The parser's answer can be mocked to test the thresholds alone.
test_rsa_thresholds if {
	not pki_key_strength.main with input as sign("x") with pki_key_strength.csr as {"key_type": "rsa", "key_bits": 1024}
	pki_key_strength.main with input as sign("x") with pki_key_strength.csr as {"key_type": "rsa", "key_bits": 2048}
	pki_key_strength.main with input as sign("x") with pki_key_strength.csr as {"key_type": "ec", "key_bits": 384}
}

test_unknown_key_types_are_refused if {
	not pki_key_strength.main with input as sign("x") with pki_key_strength.csr as {"key_type": "dsa", "key_bits": 2048}
}
