# Logins only from the office network (an EGP on auth/*/login/*, hard-mandatory). EGPs also
# run on unauthenticated paths, so a login from elsewhere is refused before the password is
# even checked.
package tresor.office_network

import rego.v1

# The office's networks; the end-to-end test uses 127.0.0.2/32.
office := ["127.0.0.2/32", "192.0.2.0/24"]

default main := false

main if {
	input.request.connection.remote_addr != ""
	some cidr in office
	net.cidr_contains(cidr, input.request.connection.remote_addr)
}

deny contains msg if {
	not main
	msg := sprintf("logins are allowed from the office network only, not from %s", [input.request.connection.remote_addr])
}
