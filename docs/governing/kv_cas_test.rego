package tresor.kv_cas_test

import rego.v1

import data.tresor.kv_cas

write(fields) := {"request": {"path": "secret/data/app", "operation": "update", "mount_path": "secret/", "mount_type": "kv", "data": fields}}

test_write_without_cas_is_refused if {
	not kv_cas.main with input as write({"data": {"k": "v"}})
	kv_cas.deny == {"writes to secret/data/app must use check-and-set (options.cas, e.g. `kv put -cas=N`)"} with input as write({"data": {"k": "v"}})
}

test_write_with_cas_is_allowed if {
	kv_cas.main with input as write({"data": {"k": "v"}, "options": {"cas": 3}})
	kv_cas.main with input as write({"data": {"k": "v"}, "options": {"cas": 0}})
}

test_cas_must_be_a_number if {
	not kv_cas.main with input as write({"data": {"k": "v"}, "options": {"cas": "3"}})
}

test_reads_and_metadata_are_not_governed if {
	kv_cas.main with input as {"request": {"path": "secret/data/app", "operation": "read", "mount_path": "secret/", "mount_type": "kv"}}
	kv_cas.main with input as {"request": {"path": "secret/metadata/app", "operation": "update", "mount_path": "secret/", "mount_type": "kv", "data": {}}}
}

test_other_engines_are_not_governed if {
	kv_cas.main with input as {"request": {"path": "pki/data/x", "operation": "update", "mount_path": "pki/", "mount_type": "pki", "data": {}}}
}
