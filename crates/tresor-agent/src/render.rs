//! Rendering templates to files and `env_template`s to the `exec` child's environment.
//!
//! Every `static_secret_render_interval` all templates are rendered again; a file is
//! rewritten (atomically, with its mode) only when its content changed, and its `command`
//! runs only then. A template that fails keeps its previous file and is retried on its own
//! with backoff, without re-rendering the others. Within one round, the same secret is read
//! once; a leased secret is reused until two thirds of its lease, and a `pkiCert` certificate
//! until two thirds of its lifetime, so re-rendering does not mint new credentials each
//! round. Errors are logged without values (a template error never quotes a secret).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tresor_client::{Client, ClientError, Method, Request, TokenChoice};
use zeroize::Zeroizing;

use crate::auth::Token;
use crate::backoff::Backoff;
use crate::config::{self, Config, TemplateSettings};
use crate::files;
use crate::template::{Source, Template};
use crate::x509;

/// The parsed templates.
#[derive(Debug)]
pub struct Prepared {
    files: Vec<(config::Template, Template)>,
    envs: Vec<(config::EnvTemplate, Template)>,
}

impl Prepared {
    /// Whether there is anything to render.
    pub fn has_work(&self) -> bool {
        !self.files.is_empty() || !self.envs.is_empty()
    }
}

/// Parses every template; the first syntax error stops the agent.
pub fn prepare(cfg: &Config) -> Result<Prepared, String> {
    let mut files = Vec::new();
    for (i, t) in cfg.templates.iter().enumerate() {
        let parsed = Template::parse(&t.text, &t.left_delimiter, &t.right_delimiter)
            .map_err(|e| format!("template[{i}] ({}): {e}", t.destination.display()))?;
        files.push((t.clone(), parsed));
    }
    let mut envs = Vec::new();
    for e in &cfg.env_templates {
        let parsed = Template::parse(&e.text, "{{", "}}")
            .map_err(|err| format!("env_template {:?}: {err}", e.name))?;
        envs.push((e.clone(), parsed));
    }
    Ok(Prepared { files, envs })
}

type Memo = Arc<Mutex<HashMap<String, (Value, Option<Instant>)>>>;

/// Fetches secrets for one rendering, on a blocking thread.
struct Fetcher {
    handle: tokio::runtime::Handle,
    client: Client,
    token: Token,
    /// Values kept across rounds (leased secrets, certificates), with when they go stale.
    memo: Memo,
    /// Values read in this round.
    round: HashMap<String, Value>,
}

fn kv_args(args: &[String]) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("argument {a:?} is not key=value"))?;
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

fn api_error(path: &str, e: ClientError) -> String {
    match e {
        ClientError::Api(a) => format!("{path}: status {}: {}", a.status, a.errors.join("; ")),
        other => format!("{path}: {other}"),
    }
}

impl Fetcher {
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<tresor_client::Secret, String> {
        let mut req = Request::new(method, path)
            .token(TokenChoice::Override(Zeroizing::new(
                self.token.to_string(),
            )))
            .no_wrap();
        req.body = body;
        self.handle
            .block_on(self.client.secret(&req))
            .map_err(|e| api_error(path, e))?
            .ok_or_else(|| format!("{path}: no secret exists at this path"))
    }

    fn remembered(&mut self, key: &str) -> Option<Value> {
        if let Some(v) = self.round.get(key) {
            return Some(v.clone());
        }
        let memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
        match memo.get(key) {
            Some((v, Some(until))) if Instant::now() < *until => Some(v.clone()),
            _ => None,
        }
    }

    fn remember(&mut self, key: String, v: &Value, until: Option<Instant>) {
        self.round.insert(key.clone(), v.clone());
        if until.is_some() {
            let mut memo = self.memo.lock().unwrap_or_else(|e| e.into_inner());
            memo.insert(key, (v.clone(), until));
        }
    }
}

impl Source for Fetcher {
    fn secret(&mut self, path: &str, args: &[String]) -> Result<Value, String> {
        let key = format!("secret\0{path}\0{}", args.join("\0"));
        if let Some(v) = self.remembered(&key) {
            return Ok(v);
        }
        let s = if args.is_empty() {
            self.call(Method::GET, path, None)?
        } else {
            self.call(Method::PUT, path, Some(Value::Object(kv_args(args)?)))?
        };
        let v = json!({
            "RequestID": s.request_id,
            "LeaseID": s.lease_id,
            "LeaseDuration": s.lease_duration,
            "Renewable": s.renewable,
            "Data": s.data.clone().map(Value::Object).unwrap_or(Value::Null),
            "Warnings": s.warnings.clone().map(|w| json!(w)).unwrap_or(Value::Null),
        });
        let until = (!s.lease_id.is_empty() && s.lease_duration > 0).then(|| {
            Instant::now() + Duration::from_secs(s.lease_duration as u64).mul_f64(2.0 / 3.0)
        });
        self.remember(key, &v, until);
        Ok(v)
    }

    fn pki_cert(&mut self, path: &str, args: &[String]) -> Result<Value, String> {
        let key = format!("pki\0{path}\0{}", args.join("\0"));
        if let Some(v) = self.remembered(&key) {
            return Ok(v);
        }
        let s = self.call(Method::POST, path, Some(Value::Object(kv_args(args)?)))?;
        let d = s.data.unwrap_or_default();
        let text = |k: &str| {
            d.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let cert = text("certificate");
        let v = json!({
            "Data": {
                "Cert": cert,
                "Key": text("private_key"),
                "CA": text("issuing_ca"),
                "CAChain": d.get("ca_chain").cloned().unwrap_or(json!([])),
            }
        });
        let until = x509::parse_cert(&cert).ok().map(|i| {
            let life = (i.not_after - i.not_before).max(0) as u64;
            let left = (i.not_after - now_unix()).max(0) as u64;
            let keep = left.saturating_sub(life / 3);
            Instant::now() + Duration::from_secs(keep)
        });
        self.remember(key, &v, until);
        Ok(v)
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The outcome of rendering: per file template, the text or the error; and the environment
/// when every `env_template` rendered.
struct Round {
    files: Vec<Option<Result<String, String>>>,
    env: Option<Result<BTreeMap<String, String>, String>>,
}

fn render_round(p: &Prepared, which: &[bool], with_env: bool, fetcher: &mut Fetcher) -> Round {
    let files = p
        .files
        .iter()
        .zip(which)
        .map(|((cfg, t), todo)| todo.then(|| t.render(fetcher, cfg.error_on_missing_key)))
        .collect();
    let env = with_env.then(|| {
        let mut m = BTreeMap::new();
        for (cfg, t) in &p.envs {
            let v = t
                .render(fetcher, cfg.error_on_missing_key)
                .map_err(|e| format!("env_template {:?}: {e}", cfg.name))?;
            m.insert(cfg.name.clone(), v);
        }
        Ok(m)
    });
    Round { files, env }
}

/// Writes a rendered file when it changed; true when it was written.
fn write_if_changed(t: &config::Template, content: &str) -> Result<bool, String> {
    if let Ok(old) = std::fs::read(&t.destination)
        && old == content.as_bytes()
    {
        return Ok(false);
    }
    if t.create_dest_dirs
        && let Some(d) = t.destination.parent()
        && !d.as_os_str().is_empty()
    {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    files::write_atomic(&t.destination, content.as_bytes(), t.perms, None, None)
        .map_err(|e| format!("writing {}: {e}", t.destination.display()))?;
    Ok(true)
}

/// How many failed rounds in a row `exit_on_retry_failure` tolerates (Vault retries 12 times).
const MAX_FAILED_ROUNDS: u32 = 12;

/// Renders forever.
pub async fn run(
    client: Client,
    p: Prepared,
    settings: TemplateSettings,
    mut rx: watch::Receiver<Option<Token>>,
    env_tx: watch::Sender<Option<BTreeMap<String, String>>>,
) -> Result<(), String> {
    let p = Arc::new(p);
    let memo: Memo = Arc::default();
    let n = p.files.len();
    let mut failed = vec![true; n];
    let mut env_failed = true;
    let mut full = true;
    let mut backoff = Backoff::new(
        Duration::from_secs(1),
        settings.static_secret_render_interval,
    );
    let mut failed_rounds = 0u32;
    let mut last_full = Instant::now();
    loop {
        let token = match rx.wait_for(Option::is_some).await {
            Ok(t) => t.clone().unwrap_or_default(),
            Err(_) => return Ok(()),
        };
        let which: Vec<bool> = if full { vec![true; n] } else { failed.clone() };
        let with_env = (full || env_failed) && !p.envs.is_empty();
        let mut fetcher = Fetcher {
            handle: tokio::runtime::Handle::current(),
            client: client.clone(),
            token,
            memo: memo.clone(),
            round: HashMap::new(),
        };
        let pc = p.clone();
        let round =
            tokio::task::spawn_blocking(move || render_round(&pc, &which, with_env, &mut fetcher))
                .await
                .map_err(|e| format!("rendering stopped: {e}"))?;
        let mut any_failed = false;
        for (i, r) in round.files.into_iter().enumerate() {
            let Some(r) = r else { continue };
            let (cfg, _) = &p.files[i];
            let dest = cfg.destination.display().to_string();
            match r.and_then(|text| write_if_changed(cfg, &text)) {
                Ok(changed) => {
                    failed[i] = false;
                    if changed {
                        tracing::info!(destination = %dest, "rendered");
                        crate::cert::run_command(&cfg.command, cfg.command_timeout, &dest).await;
                    }
                }
                Err(e) => {
                    failed[i] = true;
                    any_failed = true;
                    tracing::error!(destination = %dest, error = %e, "template failed");
                }
            }
        }
        match round.env {
            Some(Ok(env)) => {
                env_failed = false;
                env_tx.send_if_modified(|cur| {
                    if cur.as_ref() != Some(&env) {
                        *cur = Some(env);
                        true
                    } else {
                        false
                    }
                });
            }
            Some(Err(e)) => {
                env_failed = true;
                any_failed = true;
                tracing::error!(error = %e, "env_template failed");
            }
            None => {}
        }
        if p.envs.is_empty() && !failed.iter().any(|f| *f) {
            // `exec` without env templates starts once the files are rendered.
            env_tx.send_if_modified(|cur| {
                if cur.is_none() {
                    *cur = Some(BTreeMap::new());
                    true
                } else {
                    false
                }
            });
        }
        if full {
            last_full = Instant::now();
        }
        let next_full = last_full + settings.static_secret_render_interval;
        if any_failed {
            failed_rounds += 1;
            if settings.exit_on_retry_failure && failed_rounds >= MAX_FAILED_ROUNDS {
                return Err(format!(
                    "templates failed {failed_rounds} times in a row (exit_on_retry_failure)"
                ));
            }
            let retry = Instant::now() + backoff.next_wait();
            if retry < next_full {
                full = false;
                tokio::time::sleep_until(retry.into()).await;
                continue;
            }
        } else {
            failed_rounds = 0;
            backoff.reset();
        }
        full = true;
        tokio::time::sleep_until(next_full.into()).await;
    }
}
