//! Tokens and what they unlock: `token create|lookup|renew|revoke|capabilities`, `login`
//! (which validates a token and stores it in `~/.vault-token`), `unwrap`, and
//! `lease lookup|renew|revoke`.

use serde_json::{Map, Value, json};
use subtle::ConstantTimeEq;
use tresor_client::Method;
use zeroize::Zeroizing;

use super::{Cli, CliError, CmdResult, Usage, exact_args, max_args, min_args, remote};
use crate::client::{Request, TokenChoice};
use crate::duration;
use crate::env;
use crate::flags::{Kind, Parsed, flag};
use crate::secret::{Secret, SecretAuth};

const CREATE: Usage = Usage {
    text: "Usage: tresor token create [options]

  Creates a new token, a child of the current one unless -orphan is given.",
    flags: &[
        flag(
            "id",
            Kind::Str,
            "The token's value (root only; normally generated).",
        ),
        flag(
            "display-name",
            Kind::Str,
            "Name shown in audit logs and lookups.",
        ),
        flag("ttl", Kind::Duration, "Initial TTL."),
        flag(
            "explicit-max-ttl",
            Kind::Duration,
            "Hard limit on the token's lifetime.",
        ),
        flag(
            "period",
            Kind::Duration,
            "Make a periodic token renewed by this much.",
        ),
        flag("renewable", Kind::Bool, "Allow renewal (default true)."),
        flag("orphan", Kind::Bool, "Create a token with no parent."),
        flag(
            "no-default-policy",
            Kind::Bool,
            "Do not attach the default policy.",
        ),
        flag(
            "use-limit",
            Kind::Int,
            "Number of uses before the token is revoked (0 = unlimited).",
        ),
        flag(
            "policy",
            Kind::List,
            "Policy to attach; may repeat or be comma-separated.",
        ),
        flag("metadata", Kind::Map, "Metadata key=value; may repeat."),
        flag(
            "role",
            Kind::Str,
            "Create the token against this token role.",
        ),
        flag("type", Kind::Str, "service or batch."),
        flag(
            "entity-alias",
            Kind::Str,
            "Entity alias to associate with the token.",
        ),
    ],
};

/// The body of `token create`: what Vault's client sends.
pub fn create_body(p: &Parsed) -> Value {
    let mut body = Map::new();
    if let Some(id) = p.str("id").filter(|s| !s.is_empty()) {
        body.insert("id".to_string(), json!(id));
    }
    let policies = p.list("policy");
    if !policies.is_empty() {
        body.insert("policies".to_string(), json!(policies));
    }
    let meta = p.map("metadata");
    if !meta.is_empty() {
        body.insert("meta".to_string(), json!(meta));
    }
    for (flag_name, key) in [
        ("ttl", "ttl"),
        ("explicit-max-ttl", "explicit_max_ttl"),
        ("period", "period"),
    ] {
        if let Some(n) = p.duration(flag_name).filter(|n| *n != 0) {
            body.insert(key.to_string(), json!(duration::go_string(n)));
        }
    }
    if p.bool("orphan") {
        body.insert("no_parent".to_string(), json!(true));
    }
    if p.bool("no-default-policy") {
        body.insert("no_default_policy".to_string(), json!(true));
    }
    body.insert("display_name".to_string(), json!(p.string("display-name")));
    body.insert(
        "num_uses".to_string(),
        json!(p.int("use-limit").unwrap_or(0)),
    );
    body.insert(
        "renewable".to_string(),
        json!(p.opt_bool("renewable").unwrap_or(true)),
    );
    body.insert("type".to_string(), json!(p.string("type")));
    body.insert("entity_alias".to_string(), json!(p.string("entity-alias")));
    Value::Object(body)
}

/// `tresor token create`.
pub fn create(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&CREATE, args)?;
    max_args(&p.args, 0)?;
    let path = match (p.str("role").filter(|r| !r.is_empty()), p.bool("orphan")) {
        (Some(role), _) => format!("auth/token/create/{role}"),
        (None, true) => "auth/token/create-orphan".to_string(),
        (None, false) => "auth/token/create".to_string(),
    };
    let client = cli.client(&p)?;
    let secret = client
        .secret(&Request::new(Method::POST, &path).json(create_body(&p)))
        .map_err(|e| remote("creating token", e))?
        .ok_or_else(|| CliError::Remote("Error creating token: empty response".to_string()))?;
    cli.print_secret(&secret)
}

const LOOKUP: Usage = Usage {
    text: "Usage: tresor token lookup [options] [TOKEN | ACCESSOR]

  Shows the properties of a token: the current one when none is given.",
    flags: &[flag(
        "accessor",
        Kind::Bool,
        "The argument is an accessor, not a token.",
    )],
};

/// `tresor token lookup`.
pub fn lookup(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LOOKUP, args)?;
    max_args(&p.args, 1)?;
    let accessor = p.bool("accessor");
    if accessor && p.args.is_empty() {
        return Err(CliError::Usage(
            "Not enough arguments (expected 1, got 0)".to_string(),
        ));
    }
    let req = match p.args.first() {
        None => Request::new(Method::GET, "auth/token/lookup-self"),
        Some(a) if accessor => {
            Request::new(Method::POST, "auth/token/lookup-accessor").json(json!({ "accessor": a }))
        }
        Some(t) => Request::new(Method::POST, "auth/token/lookup").json(json!({ "token": t })),
    };
    let client = cli.client(&p)?;
    let secret = client
        .secret(&req)
        .map_err(|e| remote("looking up token", e))?
        .ok_or_else(|| CliError::Remote("Error looking up token: empty response".to_string()))?;
    cli.print_secret(&secret)
}

const RENEW: Usage = Usage {
    text: "Usage: tresor token renew [options] [TOKEN | ACCESSOR]

  Renews a token's lease: the current token when none is given.",
    flags: &[
        flag(
            "increment",
            Kind::Duration,
            "Requested extension (the server may cap it).",
        ),
        flag("i", Kind::Duration, "Alias of -increment."),
        flag(
            "accessor",
            Kind::Bool,
            "The argument is an accessor, not a token.",
        ),
    ],
};

/// `tresor token renew`.
pub fn renew(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&RENEW, args)?;
    max_args(&p.args, 1)?;
    let increment = p
        .duration("increment")
        .or_else(|| p.duration("i"))
        .unwrap_or(0)
        / duration::SECOND;
    let accessor = p.bool("accessor");
    if accessor && p.args.is_empty() {
        return Err(CliError::Usage(
            "Not enough arguments (expected 1, got 0)".to_string(),
        ));
    }
    let req = match p.args.first() {
        None => Request::new(Method::PUT, "auth/token/renew-self")
            .json(json!({ "increment": increment })),
        Some(a) if accessor => Request::new(Method::PUT, "auth/token/renew-accessor")
            .json(json!({ "accessor": a, "increment": increment })),
        Some(t) => Request::new(Method::PUT, "auth/token/renew")
            .json(json!({ "token": t, "increment": increment })),
    };
    let client = cli.client(&p)?;
    let secret = client
        .secret(&req)
        .map_err(|e| remote("renewing token", e))?
        .ok_or_else(|| CliError::Remote("Error renewing token: empty response".to_string()))?;
    cli.print_secret(&secret)
}

const REVOKE: Usage = Usage {
    text: "Usage: tresor token revoke [options] [TOKEN | ACCESSOR]

  Revokes a token and, by default, all of its children.",
    flags: &[
        flag("self", Kind::Bool, "Revoke the current token."),
        flag(
            "accessor",
            Kind::Bool,
            "The argument is an accessor, not a token.",
        ),
        flag(
            "mode",
            Kind::Str,
            "\"orphan\" keeps the children (they become orphans); \"path\" revokes every token created under the given path prefix.",
        ),
    ],
};

/// `tresor token revoke`.
pub fn revoke(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&REVOKE, args)?;
    let mode = p.string("mode");
    let (is_self, accessor) = (p.bool("self"), p.bool("accessor"));
    if !matches!(mode.as_str(), "" | "orphan" | "path") {
        return Err(CliError::Usage(format!("Invalid mode: {mode}")));
    }
    if is_self {
        max_args(&p.args, 0)?;
        if accessor || !mode.is_empty() {
            return Err(CliError::Usage(
                "Cannot use -self with -accessor or -mode".to_string(),
            ));
        }
    } else {
        exact_args(&p.args, 1)?;
    }
    if accessor && mode == "path" {
        return Err(CliError::Usage(
            "Cannot use -mode=path with -accessor".to_string(),
        ));
    }
    let client = cli.client(&p)?;
    let arg = p.args.first().cloned().unwrap_or_default();
    let req = if is_self {
        Request::new(Method::PUT, "auth/token/revoke-self")
    } else if accessor {
        Request::new(Method::PUT, "auth/token/revoke-accessor").json(json!({ "accessor": arg }))
    } else {
        match mode.as_str() {
            "orphan" => {
                Request::new(Method::PUT, "auth/token/revoke-orphan").json(json!({ "token": arg }))
            }
            "path" => Request::new(Method::PUT, &format!("sys/leases/revoke-prefix/{arg}")),
            _ => Request::new(Method::PUT, "auth/token/revoke").json(json!({ "token": arg })),
        }
    };
    client.call(&req).map_err(|e| remote("revoking token", e))?;
    cli.outln("Success! Revoked token (if it existed)");
    Ok(0)
}

const CAPABILITIES: Usage = Usage {
    text: "Usage: tresor token capabilities [options] [TOKEN] PATH

  Prints what TOKEN (the current token when omitted) may do on PATH.",
    flags: &[],
};

fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Picks the capability list out of a `sys/capabilities*` response.
pub fn capabilities_of(secret: &Secret, path: &str) -> Vec<String> {
    let data = secret.data();
    let pick = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut caps = pick(data.get(path));
    if caps.is_empty() {
        caps = pick(data.get("capabilities"));
    }
    caps.sort();
    caps
}

/// `tresor token capabilities`.
pub fn capabilities(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&CAPABILITIES, args)?;
    min_args(&p.args, 1)?;
    max_args(&p.args, 2)?;
    let client = cli.client(&p)?;
    let (token, path) = if p.args.len() == 2 {
        (Some(p.args[0].clone()), p.args[1].clone())
    } else {
        (None, p.args[0].clone())
    };
    let own = client.token().unwrap_or_default();
    let req = match &token {
        Some(t) if !same_token(t, own) => {
            Request::new(Method::POST, "sys/capabilities").json(json!({ "token": t, "path": path }))
        }
        _ => Request::new(Method::POST, "sys/capabilities-self").json(json!({ "path": path })),
    };
    let secret = client
        .secret(&req)
        .map_err(|e| remote("listing capabilities", e))?
        .ok_or_else(|| {
            CliError::Remote(
                "Error listing capabilities: data from server response is empty".to_string(),
            )
        })?;
    let caps = capabilities_of(&secret, &path);
    if cli.is_table() {
        cli.outln(&caps.join(", "));
        return Ok(0);
    }
    let list: Vec<Value> = caps.into_iter().map(Value::String).collect();
    cli.print_list(&list)
}

const LOGIN: Usage = Usage {
    text: "Usage: tresor login [options] [AUTH K=V...]

  Authenticates and stores the resulting token in ~/.vault-token. With the default token
  method the argument is the token (prompted for when missing, read from stdin when -).
  Other methods take K=V arguments, e.g. -method=userpass username=alice (the password is
  prompted for, without echo, when password= is not given), or -method=cert with
  -client-cert and -client-key (optionally name=ROLE). `tresor auth help TYPE` explains a
  method's arguments.",
    flags: &[
        flag("method", Kind::Str, "Auth method type (default token)."),
        flag(
            "mode",
            Kind::Str,
            "With -method=oidc: browser (default) or device, the device authorization grant for hosts without a browser (also mode=device).",
        ),
        flag(
            "path",
            Kind::Str,
            "Mount path of the auth method (default: the method's name).",
        ),
        flag(
            "no-store",
            Kind::Bool,
            "Do not store the token in the token helper.",
        ),
        flag("no-print", Kind::Bool, "Print nothing on success."),
        flag(
            "token-only",
            Kind::Bool,
            "Print only the token; implies -no-store.",
        ),
    ],
};

/// What a token lookup says, shaped like a login response.
pub fn auth_from_lookup(token: &str, data: &Map<String, Value>) -> Secret {
    let strs = |k: &str| -> Option<Vec<String>> {
        data.get(k).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
    };
    let metadata = data.get("meta").and_then(Value::as_object).map(|m| {
        m.iter()
            .map(|(k, v)| {
                let s = v
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string());
                (k.clone(), s)
            })
            .collect()
    });
    let policies = strs("policies");
    Secret {
        auth: Some(SecretAuth {
            client_token: token.to_string(),
            accessor: data
                .get("accessor")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            token_policies: policies.clone(),
            identity_policies: strs("identity_policies"),
            policies,
            metadata,
            orphan: data.get("orphan").and_then(Value::as_bool).unwrap_or(false),
            entity_id: data
                .get("entity_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            lease_duration: data.get("ttl").and_then(Value::as_i64).unwrap_or(0),
            renewable: data
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            mfa_requirement: None,
        }),
        ..Secret::default()
    }
}

fn login_token_method(cli: &mut Cli<'_, '_>, p: &Parsed) -> Result<Secret, CliError> {
    let mut token: Option<Zeroizing<String>> = None;
    for arg in &p.args {
        match arg.split_once('=') {
            Some(("token", v)) => token = Some(Zeroizing::new(v.to_string())),
            Some(_) => {}
            None if arg == "-" => {
                token = Some(Zeroizing::new(cli.read_stdin()?.trim().to_string()))
            }
            None => token = Some(Zeroizing::new(arg.clone())),
        }
    }
    let token = match token {
        Some(t) => t,
        None => cli
            .prompt_line("Token (will be hidden): ")?
            .ok_or_else(|| CliError::Local("Error reading token: no input".to_string()))?,
    };
    if token.is_empty() {
        return Err(CliError::Usage(
            "A token must be passed to auth, please view the help for more information".to_string(),
        ));
    }
    let client = cli.client(p)?;
    let lookup = client
        .secret(
            &Request::new(Method::GET, "auth/token/lookup-self")
                .token(TokenChoice::Override(token.clone())),
        )
        .map_err(|e| remote("authenticating", e))?
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: empty response to token lookup".to_string())
        })?;
    Ok(auth_from_lookup(&token, &lookup.data()))
}

/// `-method=oidc`: the browser flow. Listens on `listenaddress:port` (default
/// localhost:8250) for the provider's redirect, asks the auth method for the provider's URL
/// with that callback, prints it (and opens a browser unless `skip_browser=true`), waits for
/// one callback, and finishes the login at `oidc/callback`.
fn login_oidc(cli: &mut Cli<'_, '_>, p: &Parsed) -> Result<Secret, CliError> {
    use std::io::{Read as _, Write as _};
    let data = cli.kv_data(&p.args)?;
    let get = |k: &str| data.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let mount = super::sanitize_path(p.str("path").filter(|s| !s.is_empty()).unwrap_or("oidc"));
    let listen = get("listenaddress").unwrap_or_else(|| "localhost".into());
    let port = get("port").unwrap_or_else(|| "8250".into());
    let host = get("callbackhost").unwrap_or_else(|| listen.clone());
    let redirect = format!("http://{host}:{port}/oidc/callback");
    let bind = if listen == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        listen.clone()
    };
    let listener = std::net::TcpListener::bind(format!("{bind}:{port}")).map_err(|e| {
        CliError::Local(format!(
            "Error starting the callback listener on {bind}:{port}: {e}"
        ))
    })?;
    let mut nonce_bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut nonce_bytes)
        .map_err(|_| CliError::Local("no randomness".to_string()))?;
    let client_nonce: String = nonce_bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut body = serde_json::json!({"redirect_uri": redirect, "client_nonce": client_nonce});
    if let Some(role) = get("role") {
        body["role"] = Value::String(role);
    }
    let client = cli.client(p)?;
    let url = client
        .secret(
            &Request::new(Method::POST, &format!("auth/{mount}/oidc/auth_url"))
                .json(body)
                .token(TokenChoice::Without),
        )
        .map_err(|e| remote("getting the OIDC authorization URL", e))?
        .and_then(|s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("auth_url"))
                .and_then(|u| u.as_str())
                .map(str::to_owned)
        })
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: no auth_url returned".to_string())
        })?;
    cli.errln(&format!(
        "Complete the login via your OIDC provider. Open this URL in a browser:\n\n    {url}\n\nWaiting for OIDC authentication to complete..."
    ));
    if get("skip_browser").as_deref() != Some("true") {
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    // One callback: `GET /oidc/callback?code=...&state=...`.
    let (mut conn, _) = listener
        .accept()
        .map_err(|e| CliError::Local(format!("Error waiting for the OIDC callback: {e}")))?;
    let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(30)));
    let mut buf = vec![0u8; 16 * 1024];
    let n = conn.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("").to_owned();
    let query = target
        .split_once('?')
        .map(|(_, q)| q.to_owned())
        .unwrap_or_default();
    let reply = "Login finished: you can close this window and return to the terminal.";
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    drop(conn);
    if !query.split('&').any(|kv| kv.starts_with("code=")) {
        return Err(CliError::Remote(format!(
            "Error authenticating: the OIDC callback had no code ({target})"
        )));
    }
    let mut req = Request::new(Method::GET, &format!("auth/{mount}/oidc/callback"))
        .token(TokenChoice::Without)
        .query("client_nonce", &client_nonce);
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        req = req.query(&url_decode(k), &url_decode(v));
    }
    client
        .secret(&req)
        .map_err(|e| remote("finishing the OIDC login", e))?
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: empty OIDC callback response".to_string())
        })
}

/// The OIDC login mode: `-mode=` or `mode=`, `browser` by default.
fn oidc_mode(cli: &mut Cli<'_, '_>, p: &Parsed) -> Result<String, CliError> {
    let data = cli.kv_data(&p.args)?;
    let mode = p
        .str("mode")
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .or_else(|| data.get("mode").and_then(|v| v.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "browser".to_owned());
    if mode != "browser" && mode != "device" {
        return Err(CliError::Usage(format!(
            "invalid -mode {mode:?}: use browser or device"
        )));
    }
    Ok(mode)
}

/// `-method=oidc -mode=device` (beyond Vault): the device authorization grant. Starts the
/// login at `oidc/device_auth`, prints the verification URL and the user code for the user to
/// enter on any device with a browser, and polls `oidc/device_poll` at the provider's interval
/// until the user approves (5 seconds more after each `slow_down`), refuses, or the code
/// expires.
fn login_oidc_device(cli: &mut Cli<'_, '_>, p: &Parsed) -> Result<Secret, CliError> {
    let data = cli.kv_data(&p.args)?;
    let mount = super::sanitize_path(p.str("path").filter(|s| !s.is_empty()).unwrap_or("oidc"));
    let mut body = serde_json::json!({});
    if let Some(role) = data.get("role").and_then(|v| v.as_str()) {
        body["role"] = Value::String(role.to_owned());
    }
    let client = cli.client(p)?;
    let started = client
        .secret(
            &Request::new(Method::POST, &format!("auth/{mount}/oidc/device_auth"))
                .json(body)
                .token(TokenChoice::Without),
        )
        .map_err(|e| remote("starting the OIDC device login", e))?
        .and_then(|s| s.data)
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: empty oidc/device_auth response".to_string())
        })?;
    let text = |k: &str| {
        started
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let number = |k: &str, default: u64| started.get(k).and_then(Value::as_u64).unwrap_or(default);
    let state = text("state");
    let mut message = format!(
        "To log in, open this URL on any device with a browser:\n\n    {}\n\nand enter the code: {}\n",
        text("verification_uri"),
        text("user_code")
    );
    let complete = text("verification_uri_complete");
    if !complete.is_empty() {
        message.push_str(&format!("\n(or open {complete})\n"));
    }
    message.push_str("\nWaiting for the login to be approved...");
    cli.errln(&message);
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(number("expires_in", 300));
    let mut interval = number("interval", 5).max(1);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(interval));
        let polled = client.secret(
            &Request::new(Method::POST, &format!("auth/{mount}/oidc/device_poll"))
                .json(serde_json::json!({ "state": state }))
                .token(TokenChoice::Without),
        );
        match polled {
            Ok(Some(secret)) => return Ok(secret),
            Ok(None) => {
                return Err(CliError::Remote(
                    "Error authenticating: empty oidc/device_poll response".to_string(),
                ));
            }
            Err(e) => {
                let waiting = |prefix: &str| match &e {
                    tresor_client::ClientError::Api(a) => {
                        a.errors.iter().any(|m| m.starts_with(prefix))
                    }
                    _ => false,
                };
                if waiting("slow_down") {
                    interval += 5;
                } else if !waiting("authorization_pending") {
                    return Err(remote("finishing the OIDC device login", e));
                }
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(CliError::Remote(
                "Error authenticating: the device code expired before the login was approved"
                    .to_string(),
            ));
        }
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' {
            out.push(b' ');
        } else if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 2;
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Login MFA: asks for a passcode per enforcement (the first method of each) and finishes the
/// login at `sys/mfa/validate`.
fn login_mfa(cli: &mut Cli<'_, '_>, p: &Parsed, req: &Value) -> Result<Secret, CliError> {
    let request_id = req["mfa_request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut payload = serde_json::Map::new();
    for (_, c) in req["mfa_constraints"].as_object().into_iter().flatten() {
        let Some(m) = c["any"].as_array().and_then(|a| a.first()) else {
            continue;
        };
        let id = m["id"].as_str().unwrap_or_default().to_owned();
        let kind = m["type"].as_str().unwrap_or("totp");
        let code = cli
            .prompt_line(&format!(
                "Enter the passphrase for methodID \"{id}\" of type \"{kind}\": "
            ))?
            .ok_or_else(|| CliError::Usage("no MFA passcode given".to_string()))?;
        payload.insert(id, Value::Array(vec![Value::String(code.to_string())]));
    }
    let client = cli.client(p)?;
    client
        .secret(
            &Request::new(Method::POST, "sys/mfa/validate")
                .json(serde_json::json!({"mfa_request_id": request_id, "mfa_payload": payload}))
                .token(TokenChoice::Without),
        )
        .map_err(|e| remote("validating the MFA passcode", e))?
        .ok_or_else(|| CliError::Remote("Error authenticating: empty MFA response".to_string()))
}

fn login_other_method(cli: &mut Cli<'_, '_>, p: &Parsed, method: &str) -> Result<Secret, CliError> {
    let mut data = cli.kv_data(&p.args)?;
    let mount = super::sanitize_path(p.str("path").filter(|s| !s.is_empty()).unwrap_or(method));
    let path = match method {
        "userpass" | "ldap" | "okta" | "radius" => {
            let user = data
                .remove("username")
                .and_then(|v| v.as_str().map(str::to_string))
                .or_else(|| cli.ctx.env.var("USER"))
                .ok_or_else(|| CliError::Usage("'username' must be specified".to_string()))?;
            if !data.contains_key("password") {
                let pw = cli
                    .prompt_line("Password (will be hidden): ")?
                    .ok_or_else(|| {
                        CliError::Local("Error reading password: no input".to_string())
                    })?;
                data.insert("password".to_string(), Value::String(pw.to_string()));
            }
            format!("auth/{mount}/login/{user}")
        }
        "cert" => {
            // The certificate travels in the TLS handshake, so there must be one and TLS.
            let cfg = crate::client::config(cli.ctx.env, p)
                .map_err(|e| CliError::Local(e.to_string()))?;
            if cfg.tls.client_cert.is_none() || cfg.tls.client_key.is_none() {
                return Err(CliError::Usage(
                    "-method=cert needs a client certificate and its key: -client-cert and \
                     -client-key, or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY"
                        .to_string(),
                ));
            }
            if !cfg.address.starts_with("https://") {
                return Err(CliError::Usage(format!(
                    "-method=cert needs an https:// address (a client certificate is only sent \
                     over TLS), not {}",
                    cfg.address
                )));
            }
            format!("auth/{mount}/login")
        }
        _ => format!("auth/{mount}/login"),
    };
    let client = cli.client(p)?;
    client
        .secret(
            &Request::new(Method::POST, &path)
                .json(Value::Object(data))
                .token(TokenChoice::Without),
        )
        .map_err(|e| remote("authenticating", e))?
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: empty response from auth helper".to_string())
        })
}

/// `tresor login`.
pub fn login(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LOGIN, args)?;
    let method = p
        .str("method")
        .filter(|m| !m.is_empty())
        .unwrap_or("token")
        .to_string();
    let token_only = p.bool("token-only");
    let no_store = p.bool("no-store") || token_only;
    let mut secret = if method == "token" {
        max_args(&p.args, 1)?;
        login_token_method(cli, &p)?
    } else if method == "oidc" && oidc_mode(cli, &p)? == "device" {
        login_oidc_device(cli, &p)?
    } else if method == "oidc" {
        login_oidc(cli, &p)?
    } else {
        login_other_method(cli, &p, &method)?
    };
    if let Some(req) = secret
        .auth
        .as_ref()
        .filter(|a| a.client_token.is_empty())
        .and_then(|a| a.mfa_requirement.clone())
    {
        secret = login_mfa(cli, &p, &req)?;
    }
    if secret.wrap_info.is_some() {
        // A wrapped login response: hand it over without storing anything.
        return cli.print_secret(&secret);
    }
    let token = secret
        .auth
        .as_ref()
        .map(|a| a.client_token.clone())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            CliError::Remote("Error authenticating: no token was returned".to_string())
        })?;
    if !no_store {
        env::store_token(cli.ctx.env, &token)
            .map_err(|e| CliError::Local(format!("Error storing token: {e}")))?;
        if cli.ctx.env.var("VAULT_TOKEN").is_some() {
            cli.errln(
                "WARNING! The VAULT_TOKEN environment variable is set. It takes precedence over the\n\
                 stored token for every later command; unset it or update it to use the new token.\n",
            );
        }
    }
    if token_only {
        return cli.print_field(Some(&Value::String(token)), "token");
    }
    if p.bool("no-print") {
        return Ok(0);
    }
    if cli.is_table() && cli.field.is_none() {
        if no_store {
            cli.outln(
                "Success! You are now authenticated. The token below was NOT stored; pass it\n\
                 yourself (e.g. in VAULT_TOKEN) to use it.\n",
            );
        } else {
            cli.outln(
                "Success! You are now authenticated. The token below is stored in the token\n\
                 helper (~/.vault-token): later commands use it, no need to log in again.\n",
            );
        }
    }
    cli.print_secret(&secret)
}

const UNWRAP: Usage = Usage {
    text: "Usage: tresor unwrap [options] [TOKEN]

  Unwraps a response-wrapping token and prints the wrapped response. Without TOKEN, the
  current token is taken to be the wrapping token.",
    flags: &[],
};

/// `tresor unwrap`.
pub fn unwrap(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&UNWRAP, args)?;
    max_args(&p.args, 1)?;
    let client = cli.client(&p)?;
    let mut req = Request::new(Method::PUT, "sys/wrapping/unwrap").no_wrap();
    if let Some(t) = p.args.first().map(|t| t.trim().to_string()) {
        match client.token() {
            None => req = req.token(TokenChoice::Override(Zeroizing::new(t))),
            Some(own) if same_token(own, &t) => {}
            Some(_) => req = req.json(json!({ "token": t })),
        }
    }
    let secret = client.lenient(&req).map_err(|e| remote("unwrapping", e))?;
    match secret {
        Some(s) => cli.print_secret(&s),
        None => Err(CliError::Remote(
            "Could not find wrapped response".to_string(),
        )),
    }
}

const LEASE_LOOKUP: Usage = Usage {
    text: "Usage: tresor lease lookup [options] ID

  Shows the issue time, expiry and TTL of a lease.",
    flags: &[],
};

/// `tresor lease lookup`.
pub fn lease_lookup(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LEASE_LOOKUP, args)?;
    exact_args(&p.args, 1)?;
    let id = p.args[0].clone();
    let client = cli.client(&p)?;
    let secret = client
        .write("sys/leases/lookup", json!({ "lease_id": id }))
        .map_err(|e| remote(format_args!("looking up lease id {id}"), e))?
        .ok_or_else(|| CliError::Remote(format!("No lease found with id {id}")))?;
    cli.print_secret(&secret)
}

const LEASE_RENEW: Usage = Usage {
    text: "Usage: tresor lease renew [options] ID

  Renews the lease of a secret.",
    flags: &[
        flag(
            "increment",
            Kind::Duration,
            "Requested extension (the server may cap it).",
        ),
        flag("i", Kind::Duration, "Alias of -increment."),
    ],
};

/// `tresor lease renew`.
pub fn lease_renew(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LEASE_RENEW, args)?;
    exact_args(&p.args, 1)?;
    let id = p.args[0].clone();
    let increment = p
        .duration("increment")
        .or_else(|| p.duration("i"))
        .unwrap_or(0)
        / duration::SECOND;
    let client = cli.client(&p)?;
    let secret = client
        .write(
            "sys/leases/renew",
            json!({ "lease_id": id, "increment": increment }),
        )
        .map_err(|e| remote(format_args!("renewing {id}"), e))?
        .ok_or_else(|| CliError::Remote(format!("Error renewing {id}: empty response")))?;
    cli.print_secret(&secret)
}

const LEASE_REVOKE: Usage = Usage {
    text: "Usage: tresor lease revoke [options] ID

  Revokes a lease (and the secret behind it), or with -prefix every lease under a prefix.",
    flags: &[
        flag("prefix", Kind::Bool, "Treat ID as a prefix."),
        flag(
            "force",
            Kind::Bool,
            "With -prefix: remove the leases even if the backend fails to revoke the secrets.",
        ),
        flag("f", Kind::Bool, "Alias of -force."),
        flag("sync", Kind::Bool, "Wait for the revocation to finish."),
    ],
};

/// `tresor lease revoke`.
pub fn lease_revoke(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&LEASE_REVOKE, args)?;
    exact_args(&p.args, 1)?;
    let id = p.args[0].clone();
    let force = p.bool("force") || p.bool("f");
    let prefix = p.bool("prefix");
    if force && !prefix {
        return Err(CliError::Usage(
            "Specifying -force requires also specifying -prefix".to_string(),
        ));
    }
    let client = cli.client(&p)?;
    let mut body = Map::new();
    if let Some(sync) = p.opt_bool("sync") {
        body.insert("sync".to_string(), json!(sync));
    }
    let (req, done) = if force {
        (
            Request::new(Method::PUT, &format!("sys/leases/revoke-force/{id}")),
            format!("Success! Force revoked any leases with prefix: {id}"),
        )
    } else if prefix {
        (
            Request::new(Method::PUT, &format!("sys/leases/revoke-prefix/{id}"))
                .json(Value::Object(body)),
            format!("Success! Revoked any leases with prefix: {id}"),
        )
    } else {
        body.insert("lease_id".to_string(), json!(id));
        (
            Request::new(Method::PUT, "sys/leases/revoke").json(Value::Object(body)),
            format!("Success! Revoked lease: {id}"),
        )
    };
    client
        .call(&req)
        .map_err(|e| remote(format_args!("revoking {id}"), e))?;
    cli.outln(&done);
    Ok(0)
}

/// What `tresor auth help TYPE` prints for the methods `tresor login` knows.
fn method_help(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "token" => {
            "Usage: tresor login TOKEN [CONFIG K=V...]

  The token auth method logs in with an existing token. Without TOKEN the token is
  prompted for (without echo on a terminal); with - it is read from stdin.

    $ tresor login
    $ tresor login s.abc123

Configuration:

  token=<string>
      The token to use (the same as the argument)."
        }
        "userpass" | "ldap" | "okta" | "radius" => {
            "Usage: tresor login -method=userpass [CONFIG K=V...]

  The userpass method (and ldap, okta and radius, which log in the same way) logs in with a
  username and password. The password is prompted for without echo when password= is not
  given; when stdin is not a terminal one line is read from it.

    $ tresor login -method=userpass username=alice
    $ echo \"$PASSWORD\" | tresor login -method=userpass username=alice
    $ tresor login -method=userpass -path=people username=alice password=...

Configuration:

  username=<string>
      The username (default: $USER).

  password=<string>
      The password; prompted for when missing."
        }
        "cert" => {
            "Usage: tresor login -method=cert [CONFIG K=V...]

  The cert method logs in with the TLS client certificate presented to the server, given
  with -client-cert and -client-key (or VAULT_CLIENT_CERT and VAULT_CLIENT_KEY). The
  address must be https://.

    $ tresor login -method=cert -client-cert=alice.pem -client-key=alice-key.pem
    $ tresor login -method=cert -client-cert=alice.pem -client-key=alice-key.pem name=people

Configuration:

  name=<string>
      The certificate role to log in against (default: any role that trusts the
      certificate)."
        }
        "approle" => {
            "Usage: tresor write auth/approle/login role_id=... secret_id=...

  The approle method is for machines: there is no `tresor login` helper, write to its
  login path instead and use the client_token from the answer.

    $ tresor write -field=token auth/approle/login role_id=$ROLE_ID secret_id=$SECRET_ID"
        }
        _ => return None,
    })
}

const AUTH_HELP: Usage = Usage {
    text: "Usage: tresor auth help [options] TYPE | PATH

  Prints how to log in with an auth method: TYPE is a method's type (userpass, cert, token,
  ...); PATH is where one is mounted, whose type is then looked up on the server.

    $ tresor auth help userpass
    $ tresor auth help people/",
    flags: &[],
};

/// `tresor auth help`.
pub fn auth_help(cli: &mut Cli<'_, '_>, args: &[String]) -> CmdResult {
    let p = cli.parse(&AUTH_HELP, args)?;
    exact_args(&p.args, 1)?;
    let arg = p.args[0].trim().to_string();
    let kind = if method_help(&arg).is_some() {
        arg
    } else {
        // Not a type: maybe the path of a mounted method.
        let client = cli.client(&p)?;
        let mounts = client
            .read("sys/auth", &[])
            .map_err(|e| remote("retrieving help", e))?
            .map(|s| s.data())
            .unwrap_or_default();
        let path = super::mount_path(&arg);
        mounts
            .get(&path)
            .and_then(|m| m.get("type"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                CliError::Remote(format!("Error retrieving help: unknown auth method: {arg}"))
            })?
    };
    match method_help(&kind) {
        Some(text) => {
            cli.outln(text);
            Ok(0)
        }
        None => Err(CliError::Local(format!(
            "No method-specific CLI help for {kind}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags;

    fn parse(a: &[&str]) -> Parsed {
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        flags::parse(&[CREATE.flags], &a).unwrap()
    }

    #[test]
    fn create_body_defaults() {
        assert_eq!(
            create_body(&parse(&[])),
            json!({"display_name": "", "num_uses": 0, "renewable": true, "type": "", "entity_alias": ""})
        );
    }

    #[test]
    fn create_body_with_everything() {
        let p = parse(&[
            "-policy=web,stage",
            "-policy",
            "ops",
            "-ttl=1h",
            "-explicit-max-ttl=2h",
            "-period=30m",
            "-orphan",
            "-no-default-policy",
            "-use-limit=3",
            "-metadata=user=armon",
            "-display-name=ci",
            "-type=batch",
            "-renewable=false",
        ]);
        assert_eq!(
            create_body(&p),
            json!({
                "policies": ["web", "stage", "ops"], "meta": {"user": "armon"},
                "ttl": "1h0m0s", "explicit_max_ttl": "2h0m0s", "period": "30m0s",
                "no_parent": true, "no_default_policy": true, "display_name": "ci",
                "num_uses": 3, "renewable": false, "type": "batch", "entity_alias": ""
            })
        );
    }

    #[test]
    fn capabilities_prefer_the_path_key() {
        let s = Secret {
            data: Some(
                json!({"secret/foo": ["update", "read"], "capabilities": ["x"]})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..Secret::default()
        };
        assert_eq!(capabilities_of(&s, "secret/foo"), ["read", "update"]);
        assert_eq!(capabilities_of(&s, "other"), ["x"]);
        assert!(capabilities_of(&Secret::default(), "p").is_empty());
    }

    #[test]
    fn lookup_becomes_login_auth() {
        let data = json!({"accessor": "acc", "policies": ["root"], "ttl": 0, "meta": null,
                          "orphan": true, "id": "root"});
        let s = auth_from_lookup("root", data.as_object().unwrap());
        let a = s.auth.unwrap();
        assert_eq!(a.client_token, "root");
        assert_eq!(a.accessor, "acc");
        assert_eq!(a.policies, Some(vec!["root".to_string()]));
        assert_eq!(a.token_policies, Some(vec!["root".to_string()]));
        assert!(a.orphan);
        assert_eq!(a.lease_duration, 0);
    }

    #[test]
    fn constant_time_token_comparison() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "abcd"));
    }
}
