# PKI certificates live at most 30 days (an EGP on pki/issue/* and pki/sign/*). The request
# must say its ttl; Vault's duration forms are accepted: seconds as a number or a string,
# Go durations ("720h", "90m") and days ("30d").
package tresor.pki_max_ttl

import rego.v1

max_seconds := 30 * 86400

default main := false

main if seconds <= max_seconds

seconds := s if {
	is_number(input.request.data.ttl)
	s := input.request.data.ttl
}

seconds := s if {
	is_string(input.request.data.ttl)
	regex.match(`^[0-9]+$`, input.request.data.ttl)
	s := to_number(input.request.data.ttl)
}

seconds := s if {
	is_string(input.request.data.ttl)
	endswith(input.request.data.ttl, "d")
	s := to_number(trim_suffix(input.request.data.ttl, "d")) * 86400
}

seconds := s if {
	is_string(input.request.data.ttl)
	regex.match(`^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$`, input.request.data.ttl)
	s := time.parse_duration_ns(input.request.data.ttl) / 1000000000
}

deny contains "set ttl (at most 30 days, e.g. ttl=720h)" if not input.request.data.ttl

deny contains msg if {
	seconds > max_seconds
	msg := sprintf("certificates may live at most 30 days; ttl %v is %v days", [input.request.data.ttl, round(seconds / 86400)])
}
