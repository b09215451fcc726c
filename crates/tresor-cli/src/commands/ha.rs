//! `operator step-down` and `operator members`: the HA commands (issue 17).

use serde_json::Value;
use tresor_client::Method;

use super::{Cli, CmdResult, Usage, max_args, remote};
use crate::client::Request;
use crate::format;

const STEP_DOWN: Usage = Usage {
    text: "Usage: tresor operator step-down [options]

  Makes the active node give up the leader lock and become a standby; another node takes
  over. Sent to a standby, the request is forwarded to the active node. Needs a token with
  sudo on sys/step-down.",
    flags: &[],
};

/// `tresor operator step-down`.
pub fn step_down(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&STEP_DOWN, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    client
        .call(&Request::new(Method::PUT, "sys/step-down").no_wrap())
        .map_err(|e| remote("stepping down", e))?;
    cli.outln("Success! Stepped down: the active node is now a standby.");
    Ok(0)
}

const MEMBERS: Usage = Usage {
    text: "Usage: tresor operator members [options]

  Lists the active node and the standbys it has heard from (sys/ha-status).",
    flags: &[],
};

/// The rows of the members table, from `sys/ha-status`'s `nodes`.
pub fn member_rows(status: &Value) -> Vec<Vec<String>> {
    let nodes = status
        .get("nodes")
        .or_else(|| status.get("Nodes"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let s = |n: &Value, k: &str| match n.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => "n/a".to_string(),
    };
    nodes
        .iter()
        .map(|n| {
            vec![
                s(n, "hostname"),
                s(n, "api_address"),
                s(n, "cluster_address"),
                s(n, "active_node"),
                s(n, "version"),
                s(n, "last_echo"),
            ]
        })
        .collect()
}

/// `tresor operator members`.
pub fn members(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&MEMBERS, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    let status = client
        .json(&Request::new(Method::GET, "sys/ha-status"))
        .map_err(|e| remote("reading the HA status", e))?;
    let status = status.get("data").cloned().unwrap_or(status);
    if cli.is_table() {
        cli.out(&format::table(
            &[
                "Host Name",
                "API Address",
                "Cluster Address",
                "Active Node",
                "Version",
                "Last Echo",
            ],
            &member_rows(&status),
        ));
        Ok(0)
    } else {
        cli.print_struct(&status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_rows_follow_vaults_columns() {
        let st = serde_json::json!({"nodes": [
            {"hostname": "h1", "api_address": "http://a:8200", "cluster_address": "https://a:8201", "active_node": true, "last_echo": null, "version": "0.1.0"},
            {"hostname": "h2", "api_address": "http://b:8200", "cluster_address": "", "active_node": false, "last_echo": "2026-01-01T00:00:00Z", "version": "0.1.0"}
        ]});
        let rows = member_rows(&st);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            [
                "h1",
                "http://a:8200",
                "https://a:8201",
                "true",
                "0.1.0",
                "n/a"
            ]
        );
        assert_eq!(rows[1][3], "false");
        assert_eq!(rows[1][5], "2026-01-01T00:00:00Z");
    }
}
