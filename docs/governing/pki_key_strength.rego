# Every TLS certificate has a strong key: RSA of at least 2048 bits, EC of at least 256 bits
# (an EGP on pki/sign/* and pki/issue/*, hard-mandatory). Uses Tresor's built-in
# tresor.x509.parse_csr, so it runs under `tresor policy test`, not under the stock `opa test`.
package tresor.pki_key_strength

import rego.v1

min_bits := {"rsa": 2048, "ec": 256, "ed25519": 0}

default main := false

# pki/issue/*: the key is generated from the role; nothing in the request to check.
main if not input.request.data.csr

main if {
	count(deny) == 0
	input.request.data.csr
}

csr := tresor.x509.parse_csr(input.request.data.csr)

deny contains msg if {
	not min_bits[csr.key_type]
	msg := sprintf("keys of type %s are not allowed", [csr.key_type])
}

deny contains msg if {
	csr.key_bits < min_bits[csr.key_type]
	msg := sprintf("%s keys must have at least %d bits; this CSR has %d", [csr.key_type, min_bits[csr.key_type], csr.key_bits])
}
