//! The generic path commands: `read`, `write`, `list`, `delete`, `patch`, `path-help`.

use serde_json::{Map, Value};
use tresor_client::Method;

use super::{Cli, CliError, CmdResult, Usage, exact_args, min_args, remote, sanitize_path};
use crate::client::Request;
use crate::flags::{Kind, flag};
use crate::format::Format;

const READ: Usage = Usage {
    text: "Usage: tresor read [options] PATH [K=V...]

  Reads data at PATH. Extra K=V arguments are sent as query parameters.
  With -format=raw the response body is printed unchanged.",
    flags: &[],
};

const WRITE: Usage = Usage {
    text: "Usage: tresor write [options] PATH [DATA K=V...]

  Writes data to PATH. Values may be given inline (k=v), from a file (k=@file) or from
  stdin (k=-); a lone - reads a JSON object from stdin.",
    flags: &[
        flag("force", Kind::Bool, "Allow the write without any data."),
        flag("f", Kind::Bool, "Alias of -force."),
    ],
};

const PATCH: Usage = Usage {
    text: "Usage: tresor patch [options] PATH [DATA K=V...]

  Updates data at PATH with a JSON merge patch: keys not given are left alone.",
    flags: &[
        flag("force", Kind::Bool, "Allow the patch without any data."),
        flag("f", Kind::Bool, "Alias of -force."),
    ],
};

const LIST: Usage = Usage {
    text: "Usage: tresor list [options] PATH

  Lists the keys under PATH. Folders end in a slash.",
    flags: &[],
};

const DELETE: Usage = Usage {
    text: "Usage: tresor delete [options] PATH [K=V...]

  Deletes data at PATH. Extra K=V arguments are sent as query parameters.",
    flags: &[],
};

const PATH_HELP: Usage = Usage {
    text: "Usage: tresor path-help [options] PATH

  Prints the server's help for an API path.",
    flags: &[],
};

/// Request data as query parameters: lists become repeated parameters.
pub fn to_query(data: &Map<String, Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in data {
        match v {
            Value::Array(items) => {
                for item in items {
                    out.push((k.clone(), value_text(item)));
                }
            }
            other => out.push((k.clone(), value_text(other))),
        }
    }
    out
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `tresor read`.
pub fn read(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&READ, args)?;
    min_args(&p.args, 1)?;
    let path = sanitize_path(&p.args[0]);
    let data = cli.kv_data(&p.args[1..])?;
    let query = to_query(&data);
    let client = cli.client(&p)?;
    if cli.format == Format::Raw && cli.field.is_none() {
        let mut req = Request::new(Method::GET, &path);
        req.query = query;
        let resp = client
            .call(&req)
            .map_err(|e| remote(format_args!("reading {path}"), e))?;
        let body = String::from_utf8_lossy(&resp.body).into_owned();
        cli.out(&body);
        return Ok(0);
    }
    let secret = client
        .read(&path, &query)
        .map_err(|e| remote(format_args!("reading {path}"), e))?;
    match secret {
        Some(s) => cli.print_secret(&s),
        None => Err(CliError::Remote(format!("No value found at {path}"))),
    }
}

fn write_like(cli: &mut Cli<'_, '_>, args: &[String], usage: &Usage, patch: bool) -> CmdResult {
    let p = cli.parse(usage, args)?;
    min_args(&p.args, 1)?;
    let path = sanitize_path(&p.args[0]);
    let data = cli.kv_data(&p.args[1..])?;
    let force = p.bool("force") || p.bool("f");
    if data.is_empty() && !force {
        return Err(CliError::Usage(
            "Must supply data or use -force".to_string(),
        ));
    }
    let client = cli.client(&p)?;
    let body = Value::Object(data);
    let result = if patch {
        client.patch(&path, body)
    } else {
        client.write(&path, body)
    };
    let secret = result.map_err(|e| remote(format_args!("writing data to {path}"), e))?;
    match secret {
        None => {
            if cli.is_table() {
                cli.outln(&format!("Success! Data written to: {path}"));
            }
            Ok(0)
        }
        Some(s) => cli.print_secret(&s),
    }
}

/// `tresor write`.
pub fn write(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    write_like(cli, args, &WRITE, false)
}

/// `tresor patch`.
pub fn patch(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    write_like(cli, args, &PATCH, true)
}

/// `tresor list`.
pub fn list(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LIST, args)?;
    exact_args(&p.args, 1)?;
    let path = format!("{}/", sanitize_path(&p.args[0]));
    let client = cli.client(&p)?;
    let secret = client
        .list(&path)
        .map_err(|e| remote(format_args!("listing {path}"), e))?;
    let Some(secret) = secret else {
        return Err(CliError::Remote(format!("No value found at {path}")));
    };
    if secret.wrap_info.as_ref().is_some_and(|w| w.ttl != 0) {
        return cli.print_secret(&secret);
    }
    print_keys(cli, &secret, &path)
}

/// Prints `data.keys` of a list response, or fails the way Vault does when there are none.
pub fn print_keys(cli: &mut Cli<'_, '_>, secret: &crate::secret::Secret, path: &str) -> CmdResult {
    let keys = secret
        .data
        .as_ref()
        .and_then(|d| d.get("keys"))
        .and_then(Value::as_array)
        .filter(|k| !k.is_empty())
        .cloned();
    match keys {
        Some(keys) => cli.print_list(&keys),
        None => Err(CliError::Remote(format!("No entries found at {path}"))),
    }
}

/// `tresor delete`.
pub fn delete(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&DELETE, args)?;
    min_args(&p.args, 1)?;
    let path = sanitize_path(&p.args[0]);
    let data = cli.kv_data(&p.args[1..])?;
    let client = cli.client(&p)?;
    client
        .delete(&path, &to_query(&data))
        .map_err(|e| remote(format_args!("deleting {path}"), e))?;
    if cli.is_table() {
        cli.outln(&format!("Success! Data deleted (if it existed) at: {path}"));
    }
    Ok(0)
}

/// `tresor path-help`.
pub fn path_help(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&PATH_HELP, args)?;
    exact_args(&p.args, 1)?;
    let path = sanitize_path(&p.args[0]);
    let client = cli.client(&p)?;
    let resp = client
        .json(
            &Request::new(Method::GET, &path)
                .query("help", "1")
                .no_wrap(),
        )
        .map_err(|e| match &e {
            crate::client::ClientError::Api(api) if api.mentions("no handler for route") => {
                CliError::Remote(format!(
                    "Error: the path {path:?} does not exist or is not mounted: {e}"
                ))
            }
            _ => remote("retrieving help", e),
        })?;
    let help = resp.get("help").and_then(Value::as_str).unwrap_or_default();
    if cli.is_table() {
        cli.outln(help.trim_end());
        Ok(0)
    } else {
        cli.print_value(&resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn query_from_data() {
        let data = json!({"a": "1", "list": ["x", "y"], "n": 2});
        let q = to_query(data.as_object().unwrap());
        assert_eq!(
            q,
            vec![
                ("a".to_string(), "1".to_string()),
                ("list".to_string(), "x".to_string()),
                ("list".to_string(), "y".to_string()),
                ("n".to_string(), "2".to_string()),
            ]
        );
    }
}
