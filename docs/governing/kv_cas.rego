# No KV v2 writes without check-and-set (an EGP on */data/*, hard-mandatory): every write
# says which version it replaces (options.cas; 0 for "only if it does not exist"), so two
# writers never silently overwrite each other.
package tresor.kv_cas

import rego.v1

default main := false

writes := {"create", "update"}

main if not input.request.operation in writes

main if input.request.mount_type != "kv"

# Only data/ paths of KV v2 write secrets (metadata/, config, delete/ are other operations).
main if not startswith(trim_prefix(input.request.path, input.request.mount_path), "data/")

main if is_number(input.request.data.options.cas)

deny contains msg if {
	not main
	msg := sprintf("writes to %s must use check-and-set (options.cas, e.g. `kv put -cas=N`)", [input.request.path])
}
