# No changes to sys/ outside 08:00-18:00 UTC (an RGP, usually soft-mandatory so that an
# operator can override it in an emergency with -policy-override; the override is audited).
package tresor.business_hours

import rego.v1

default main := false

changes := {"create", "update", "delete"}

# Reads and lists are not changes.
main if not input.request.operation in changes

# Only sys/ is governed.
main if not startswith(input.request.path, "sys/")

main if {
	input.time.hour >= 8
	input.time.hour < 18
}

deny contains msg if {
	not main
	msg := sprintf("changes to sys/ are allowed 08:00-18:00 UTC only (it is %s)", [input.time.rfc3339])
}
