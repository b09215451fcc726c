package tresor.business_hours_test

import rego.v1

import data.tresor.business_hours

req(op, path, hour) := {
	"request": {"operation": op, "path": path},
	"time": {"hour": hour, "rfc3339": sprintf("2026-12-03T%02d:00:00Z", [hour])},
}

test_mount_at_night_is_denied if {
	not business_hours.main with input as req("update", "sys/mounts/kv", 3)
	business_hours.deny == {"changes to sys/ are allowed 08:00-18:00 UTC only (it is 2026-12-03T03:00:00Z)"} with input as req("update", "sys/mounts/kv", 3)
}

test_mount_in_office_hours_is_allowed if {
	business_hours.main with input as req("update", "sys/mounts/kv", 10)
}

test_six_pm_is_closed if {
	not business_hours.main with input as req("delete", "sys/mounts/kv", 18)
}

test_reads_are_allowed_at_night if {
	business_hours.main with input as req("read", "sys/mounts", 3)
}

test_other_paths_are_not_governed if {
	business_hours.main with input as req("update", "secret/data/app", 3)
}
