package tresor.office_network_test

import rego.v1

import data.tresor.office_network

login(addr) := {"request": {
	"path": "auth/userpass/login/alice",
	"operation": "update",
	"unauthenticated": true,
	"connection": {"remote_addr": addr},
}}

test_office_address_logs_in if {
	office_network.main with input as login("127.0.0.2")
	office_network.main with input as login("192.0.2.77")
}

test_other_address_is_refused if {
	not office_network.main with input as login("127.0.0.1")
	office_network.deny == {"logins are allowed from the office network only, not from 127.0.0.1"} with input as login("127.0.0.1")
}

test_missing_address_is_refused if {
	not office_network.main with input as {"request": {"connection": {"remote_addr": ""}}}
}
