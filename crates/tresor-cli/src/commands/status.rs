//! `status`: seal and HA state, and the seal-status table that `operator unseal` reuses.

use serde_json::{Map, Value};
use tresor_client::Method;

use super::{Cli, CliError, CmdResult, Usage, max_args};
use crate::client::{Client, Request};
use crate::format;

const USAGE: Usage = Usage {
    text: "Usage: tresor status [options]

  Prints the server's seal state and, when it is unsealed, its HA state. Needs no token.
  Exit code: 0 unsealed, 2 sealed, 1 error.",
    flags: &[],
};

/// `tresor status`.
pub fn status(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&USAGE, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    let seal = client
        .json(&Request::new(Method::GET, "sys/seal-status").no_wrap())
        .map_err(|e| CliError::Local(format!("Error checking seal status: {e}")))?;
    let sealed = seal.get("sealed").and_then(Value::as_bool).unwrap_or(true);
    print_seal_status(cli, &client, &seal)?;
    Ok(if sealed { 2 } else { 0 })
}

/// `sys/leader`, with "sealed" errors meaning "unknown" rather than failure.
fn leader(client: &Client) -> Result<Option<Value>, CliError> {
    match client.json(&Request::new(Method::GET, "sys/leader").no_wrap()) {
        Ok(v) => Ok(Some(v)),
        Err(crate::client::ClientError::Api(e)) if e.mentions("Vault is sealed") => Ok(None),
        Err(e) => Err(CliError::Local(format!(
            "Error checking leader status: {e}"
        ))),
    }
}

/// Prints a seal status (from `sys/seal-status` or `sys/unseal`) with leader details.
pub fn print_seal_status(
    cli: &mut Cli<'_, '_>,
    client: &Client,
    seal: &Value,
) -> Result<(), CliError> {
    let leader = leader(client)?;
    if cli.is_table() {
        let rows = seal_rows(seal, leader.as_ref());
        cli.out(&format::kv_table(&rows));
    } else {
        let combined = combined_json(seal, leader.as_ref());
        cli.print_struct(&Value::Object(combined)).map(|_| ())?;
    }
    Ok(())
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => format::go_value(other),
    }
}

fn b(v: &Value, k: &str) -> bool {
    v.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn n(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// The rows of the status table.
pub fn seal_rows(seal: &Value, leader: Option<&Value>) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut push = |k: &str, v: String| rows.push((k.to_string(), v));
    let sealed = b(seal, "sealed");
    push("Seal Type", s(seal, "type"));
    if b(seal, "recovery_seal") {
        push("Recovery Seal Type", s(seal, "recovery_seal_type"));
    }
    push("Initialized", b(seal, "initialized").to_string());
    push("Sealed", sealed.to_string());
    if b(seal, "recovery_seal") {
        push("Total Recovery Shares", n(seal, "n").to_string());
    } else {
        push("Total Shares", n(seal, "n").to_string());
    }
    push("Threshold", n(seal, "t").to_string());
    if sealed {
        push(
            "Unseal Progress",
            format!("{}/{}", n(seal, "progress"), n(seal, "t")),
        );
        push("Unseal Nonce", s(seal, "nonce"));
    }
    if b(seal, "migration") {
        push("Seal Migration in Progress", "true".to_string());
    }
    push("Version", s(seal, "version"));
    push("Build Date", s(seal, "build_date"));
    push("Storage Type", s(seal, "storage_type"));
    let (name, id) = (s(seal, "cluster_name"), s(seal, "cluster_id"));
    if !name.is_empty() && !id.is_empty() {
        push("Cluster Name", name);
        push("Cluster ID", id);
    }
    if let Some(l) = leader {
        let ha = b(l, "ha_enabled");
        push("HA Enabled", ha.to_string());
        if ha {
            let mut mode = "sealed";
            let mut leader_addr = None;
            if !sealed {
                push("HA Cluster", s(l, "leader_cluster_address"));
                if b(l, "is_self") {
                    mode = "active";
                } else {
                    mode = if b(l, "performance_standby") {
                        "standby (perf)"
                    } else {
                        "standby"
                    };
                    let addr = s(l, "leader_address");
                    leader_addr = Some(if addr.is_empty() {
                        "<none>".to_string()
                    } else {
                        addr
                    });
                }
            }
            push("HA Mode", mode.to_string());
            let active = s(l, "active_time");
            if b(l, "is_self") && !active.is_empty() && !active.starts_with("0001-01-01") {
                push("Active Since", active);
            }
            if let Some(addr) = leader_addr {
                push("Active Node Address", addr);
            }
            for (key, label) in [
                ("raft_committed_index", "Raft Committed Index"),
                ("raft_applied_index", "Raft Applied Index"),
            ] {
                if n(l, key) != 0 {
                    push(label, n(l, key).to_string());
                }
            }
        }
    }
    rows
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty() && !s.starts_with("0001-01-01"),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The JSON `status` prints: the seal status plus the leader's fields (zero values left out,
/// except `ha_enabled`).
pub fn combined_json(seal: &Value, leader: Option<&Value>) -> Map<String, Value> {
    let mut out = seal.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(l)) = leader {
        out.insert(
            "ha_enabled".to_string(),
            Value::Bool(b(leader.unwrap_or(&Value::Null), "ha_enabled")),
        );
        for (k, v) in l {
            if k != "ha_enabled" && truthy(v) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sealed_table_shows_progress_and_nonce() {
        let seal = json!({"type":"shamir","initialized":true,"sealed":true,"t":3,"n":5,
            "progress":2,"nonce":"","version":"0.1.0","build_date":"2024-01-01T00:00:00Z",
            "migration":false,"recovery_seal":false,"storage_type":"file"});
        let out = format::kv_table(&seal_rows(&seal, None));
        assert_eq!(
            out,
            "\
Key                Value
---                -----
Seal Type          shamir
Initialized        true
Sealed             true
Total Shares       5
Threshold          3
Unseal Progress    2/3
Unseal Nonce       n/a
Version            0.1.0
Build Date         2024-01-01T00:00:00Z
Storage Type       file
"
        );
    }

    #[test]
    fn unsealed_table_shows_cluster_and_ha() {
        let seal = json!({"type":"shamir","initialized":true,"sealed":false,"t":1,"n":1,
            "progress":0,"nonce":"","version":"0.1.0","build_date":"2024-01-01T00:00:00Z",
            "storage_type":"inmem","cluster_name":"tresor-cluster-1","cluster_id":"abc"});
        let leader = json!({"ha_enabled":false,"is_self":false,"active_time":"0001-01-01T00:00:00Z",
            "leader_address":"","leader_cluster_address":"","performance_standby":false});
        let rows = seal_rows(&seal, Some(&leader));
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Seal Type",
                "Initialized",
                "Sealed",
                "Total Shares",
                "Threshold",
                "Version",
                "Build Date",
                "Storage Type",
                "Cluster Name",
                "Cluster ID",
                "HA Enabled"
            ]
        );
        assert_eq!(rows.last().unwrap().1, "false");

        let leader = json!({"ha_enabled":true,"is_self":true,"active_time":"2024-01-01T00:00:00Z",
            "leader_address":"https://a:8200","leader_cluster_address":"https://a:8201",
            "raft_committed_index": 7});
        let rows = seal_rows(&seal, Some(&leader));
        let get = |k: &str| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("HA Mode").as_deref(), Some("active"));
        assert_eq!(get("HA Cluster").as_deref(), Some("https://a:8201"));
        assert_eq!(get("Active Since").as_deref(), Some("2024-01-01T00:00:00Z"));
        assert_eq!(get("Raft Committed Index").as_deref(), Some("7"));
        assert_eq!(get("Active Node Address"), None);
    }

    #[test]
    fn json_merges_leader_fields() {
        let seal = json!({"type":"shamir","sealed":false});
        let leader = json!({"ha_enabled":false,"is_self":false,"leader_address":"",
            "active_time":"0001-01-01T00:00:00Z"});
        let m = combined_json(&seal, Some(&leader));
        assert_eq!(
            Value::Object(m),
            json!({"type":"shamir","sealed":false,"ha_enabled":false})
        );
        let m = combined_json(&seal, None);
        assert!(!m.contains_key("ha_enabled"));
    }
}
