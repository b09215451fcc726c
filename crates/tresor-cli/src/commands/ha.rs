//! `operator step-down` and `operator members`, the HA commands (issue 17), and
//! `operator usage`, the client counts of a period.

use serde_json::Value;
use tresor_client::Method;

use super::{Cli, CmdResult, Usage, max_args, remote};
use crate::client::Request;
use crate::flags::{Kind, flag};
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

const USAGE: Usage = Usage {
    text: "Usage: tresor operator usage [options]

  Prints the distinct clients (identity entities, and tokens without one counted by their
  policies) that obtained a token in a period, by auth mount, from
  sys/internal/counters/activity. The period defaults to the server's default_report_months.",
    flags: &[
        flag(
            "start-time",
            Kind::Str,
            "The start of the period (RFC 3339, for example 2026-01-01T00:00:00Z).",
        ),
        flag("end-time", Kind::Str, "The end of the period (RFC 3339)."),
    ],
};

/// The rows of the usage table: one per auth mount, then the total.
pub fn usage_rows(data: &Value) -> Vec<Vec<String>> {
    let n = |c: &Value, k: &str| c.get(k).and_then(Value::as_u64).unwrap_or(0).to_string();
    let row = |name: String, c: &Value| {
        vec![
            name,
            n(c, "entity_clients"),
            n(c, "non_entity_clients"),
            n(c, "clients"),
        ]
    };
    let mut rows: Vec<Vec<String>> = data["by_namespace"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ns| ns["mounts"].as_array().cloned().unwrap_or_default())
        .map(|m| {
            row(
                m["mount_path"].as_str().unwrap_or("").to_owned(),
                &m["counts"],
            )
        })
        .collect();
    rows.push(row("Total".into(), &data["total"]));
    rows
}

/// `tresor operator usage`.
pub fn usage(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&USAGE, args)?;
    max_args(&p.args, 0)?;
    let client = cli.client(&p)?;
    let mut req = Request::new(Method::GET, "sys/internal/counters/activity");
    for (f, q) in [("start-time", "start_time"), ("end-time", "end_time")] {
        if let Some(v) = p.str(f) {
            req = req.query(q, v);
        }
    }
    let v = client
        .json(&req)
        .map_err(|e| remote("reading the client counts", e))?;
    let data = v.get("data").cloned().unwrap_or(v);
    if !cli.is_table() {
        return cli.print_struct(&data);
    }
    let s = |k: &str| data[k].as_str().unwrap_or("").to_owned();
    cli.outln(&format!("Period start: {}", s("start_time")));
    cli.outln(&format!("Period end: {}", s("end_time")));
    cli.outln("");
    cli.out(&format::table(
        &[
            "Mount path",
            "Entity clients",
            "Non-entity clients",
            "Active clients",
        ],
        &usage_rows(&data),
    ));
    Ok(0)
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
