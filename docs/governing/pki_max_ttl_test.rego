package tresor.pki_max_ttl_test

import rego.v1

import data.tresor.pki_max_ttl

issue(ttl) := {"request": {"path": "pki/issue/web", "operation": "update", "data": {"common_name": "a.example.com", "ttl": ttl}}}

test_thirty_days_in_every_form_is_allowed if {
	pki_max_ttl.main with input as issue("720h")
	pki_max_ttl.main with input as issue("30d")
	pki_max_ttl.main with input as issue(2592000)
	pki_max_ttl.main with input as issue("2592000")
	pki_max_ttl.main with input as issue("24h30m")
}

test_longer_is_refused if {
	not pki_max_ttl.main with input as issue("721h")
	not pki_max_ttl.main with input as issue("31d")
	not pki_max_ttl.main with input as issue(2592001)
	pki_max_ttl.deny == {"certificates may live at most 30 days; ttl 8760h is 365 days"} with input as issue("8760h")
}

test_missing_ttl_is_refused if {
	not pki_max_ttl.main with input as {"request": {"path": "pki/issue/web", "data": {"common_name": "a.example.com"}}}
	pki_max_ttl.deny == {"set ttl (at most 30 days, e.g. ttl=720h)"} with input as {"request": {"data": {}}}
}

test_nonsense_is_refused if {
	not pki_max_ttl.main with input as issue("soon")
}
