//! `kv-read`, `kv-write`, `kv-list`: KV version 2 on a mount of their own.
//!
//! Setup enables a fresh `kv` engine with `version = 2` at a path unique to the run, seeds
//! `numkvs` secrets of `kvsize` bytes each (reads and lists need data; writes overwrite the same
//! keys, adding versions), and cleanup disables the mount, which deletes its data. `kv-read`
//! with `non_root = true` (the `-non-root` flag) reads with a token that holds only a policy
//! granting `read` on the mount, so the benchmark can show what the ACL check costs.
//!
//! For scale measurements, `kv-write` with `distinct = true` writes every request to a new key
//! (`key-0`, `key-1`, ... in the order requests go out, or from `first_key` on) instead of
//! cycling over `numkvs`, and `kv-read` and `kv-write` accept `mount`: an existing KV v2 mount
//! used as it is (setup neither enables nor seeds it, cleanup leaves it), so a run can read
//! what an earlier run wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Value, json};
use tresor_client::MountInput;

use super::{BoxFuture, Kind, SetupContext, Workload};
use crate::client::{Api, Target, Token};
use crate::error::BenchError;

/// The `kv-read` registry entry.
pub const READ: Kind = Kind {
    name: "kv-read",
    aliases: &["kvv2_read"],
    summary: "GET a KV v2 secret (numkvs = 1000, kvsize = 1, non_root = false)",
    needs_token: true,
    check_config: check_read,
    setup: setup_read,
};

/// The `kv-write` registry entry.
pub const WRITE: Kind = Kind {
    name: "kv-write",
    aliases: &["kvv2_write"],
    summary: "write a KV v2 secret, a new version each time (numkvs = 1000, kvsize = 1)",
    needs_token: true,
    check_config: check_write,
    setup: setup_write,
};

/// The `kv-list` registry entry.
pub const LIST: Kind = Kind {
    name: "kv-list",
    aliases: &["kvv2_list"],
    summary: "LIST a KV v2 folder (numkvs = 100 keys in it)",
    needs_token: true,
    check_config: check_list,
    setup: setup_list,
};

/// Seeding and other setup requests in flight at once.
const SETUP_PARALLEL: usize = 16;

/// `kv-read` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadConfig {
    /// How many secrets to seed and read in turn.
    #[serde(default = "default_numkvs")]
    numkvs: usize,
    /// The size in bytes of each secret's value.
    #[serde(default = "default_kvsize")]
    kvsize: usize,
    /// Read with a token holding only a read policy on the mount, instead of the caller's.
    #[serde(default)]
    non_root: bool,
    /// An existing KV v2 mount holding `key-0` .. `key-<numkvs - 1>`, read as it is.
    #[serde(default)]
    mount: Option<String>,
    /// Read with a token acting for an identity entity and holding three policies, either
    /// `"plain"` or `"templated"` (the same grants written with `{{identity...}}` templates),
    /// so the benchmark shows what rendering templated policies costs (issue 13).
    #[serde(default)]
    identity_policies: Option<String>,
    /// With `non_root`: three EGPs on the mount and one RGP on the reader's token, all
    /// matching and all passing (issue 18: governing policies cost at most 15% of kv-read).
    #[serde(default)]
    governing: bool,
}

/// `kv-write` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteConfig {
    /// How many distinct secrets the writes cycle over.
    #[serde(default = "default_numkvs")]
    numkvs: usize,
    /// The size in bytes of each written value.
    #[serde(default = "default_kvsize")]
    kvsize: usize,
    /// Write every request to a new key instead of cycling over `numkvs`.
    #[serde(default)]
    distinct: bool,
    /// With `distinct`: the number of the first new key, so that runs can follow each other
    /// (`key-<first_key>`, `key-<first_key + 1>`, ...).
    #[serde(default)]
    first_key: u64,
    /// An existing KV v2 mount to write into (left in place at cleanup).
    #[serde(default)]
    mount: Option<String>,
}

/// `kv-list` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListConfig {
    /// How many secrets the listed folder holds.
    #[serde(default = "default_list_numkvs")]
    numkvs: usize,
    /// The size in bytes of each seeded value.
    #[serde(default = "default_kvsize")]
    kvsize: usize,
}

fn default_numkvs() -> usize {
    1000
}

fn default_list_numkvs() -> usize {
    100
}

fn default_kvsize() -> usize {
    1
}

fn validate(numkvs: usize, kvsize: usize) -> Result<(), String> {
    if numkvs == 0 {
        return Err("numkvs must be at least 1".into());
    }
    if kvsize > 1 << 20 {
        return Err("kvsize must be at most 1048576 bytes".into());
    }
    Ok(())
}

/// A mount path: non-empty segments of letters, digits, `-`, `_` and `.`, without the
/// surrounding slashes (it is put into request paths as it is).
fn validate_mount(mount: Option<&str>) -> Result<(), String> {
    let Some(m) = mount else { return Ok(()) };
    let ok = !m.is_empty()
        && m.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "mount {m:?} must be a path such as \"secret\" or \"team/kv\" (no leading or trailing slash)"
        ))
    }
}

fn check_read(v: &Value) -> Result<(), String> {
    let c: ReadConfig = super::parse_config(v)?;
    validate(c.numkvs, c.kvsize)?;
    if c.governing && !c.non_root {
        return Err(
            "governing needs non_root (root tokens are exempt from governing policies)".into(),
        );
    }
    if let Some(p) = &c.identity_policies {
        if p != "plain" && p != "templated" {
            return Err(format!(
                "identity_policies must be \"plain\" or \"templated\", not {p:?}"
            ));
        }
        if c.non_root {
            return Err("identity_policies and non_root cannot be combined".into());
        }
    }
    validate_mount(c.mount.as_deref())
}

fn check_write(v: &Value) -> Result<(), String> {
    let c: WriteConfig = super::parse_config(v)?;
    validate(c.numkvs, c.kvsize)?;
    if c.first_key > 0 && !c.distinct {
        return Err("first_key needs distinct = true".into());
    }
    validate_mount(c.mount.as_deref())
}

fn check_list(v: &Value) -> Result<(), String> {
    let c: ListConfig = super::parse_config(v)?;
    validate(c.numkvs, c.kvsize)
}

/// The caller's token as a header, or the error naming the workload.
fn caller_token(ctx: &SetupContext) -> Result<Token, BenchError> {
    ctx.api
        .token()
        .cloned()
        .ok_or_else(|| BenchError::NoToken(ctx.name.clone()))
}

fn key(i: usize) -> String {
    format!("key-{i}")
}

fn secret_body(kvsize: usize) -> Value {
    json!({ "data": { "value": "x".repeat(kvsize) } })
}

fn uri(path: String) -> Result<Uri, BenchError> {
    path.parse().map_err(|_| BenchError::Server {
        context: "building a request".into(),
        message: format!("invalid path {path:?}"),
    })
}

/// Enables KV v2 at `mount`.
async fn enable(api: &Api, name: &str, mount: &str) -> Result<(), BenchError> {
    let input = MountInput {
        engine: "kv".into(),
        description: "tresor bench (removed when the run ends)".into(),
        options: [("version".to_owned(), "2".to_owned())].into(),
        config: None,
    };
    api.check(
        &format!("{name}: enabling kv version 2 at {mount}/"),
        api.client().mount(mount, &input),
    )
    .await
}

/// Disables `mount`, deleting everything in it.
async fn disable(api: &Api, mount: &str) -> Result<(), BenchError> {
    api.check(&format!("disabling {mount}/"), api.client().unmount(mount))
        .await
}

/// Seeds `numkvs` secrets. A freshly enabled KV v2 mount may answer with an error for a
/// moment while it initializes (Vault's "upgrading" phase), so the first write is retried for
/// up to ten seconds before the rest go out in parallel.
async fn seed(
    api: &Arc<Api>,
    name: &str,
    mount: &str,
    numkvs: usize,
    kvsize: usize,
) -> Result<(), BenchError> {
    let body = Arc::new(secret_body(kvsize));
    let context = format!("{name}: seeding {numkvs} secrets in {mount}/");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match api
            .expect_ok(
                &context,
                Method::POST,
                &format!("{mount}/data/{}", key(0)),
                Some(&body),
                None,
            )
            .await
        {
            Ok(_) => break,
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let mount = Arc::new(mount.to_owned());
    let context = Arc::new(context);
    super::for_each_parallel(numkvs - 1, SETUP_PARALLEL, |i| {
        let (api, body, mount, context) =
            (api.clone(), body.clone(), mount.clone(), context.clone());
        async move {
            api.expect_ok(
                &context,
                Method::POST,
                &format!("{mount}/data/{}", key(i + 1)),
                Some(&body),
                None,
            )
            .await
            .map(|_| ())
        }
    })
    .await
}

/// Runs `f` after enabling `mount`; disables the mount again if `f` fails.
async fn with_mount<T, F>(ctx: &SetupContext, mount: &str, f: F) -> Result<T, BenchError>
where
    F: Future<Output = Result<T, BenchError>>,
{
    enable(&ctx.api, &ctx.name, mount).await?;
    match f.await {
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = disable(&ctx.api, mount).await;
            Err(e)
        }
    }
}

/// The path of a key's data, for a request.
fn data_uri(mount: &str, i: u64) -> Uri {
    // A mount path is validated and a key is `key-<n>`, so the path always parses.
    Uri::try_from(format!("/v1/{mount}/data/key-{i}")).unwrap_or_else(|_| Uri::from_static("/"))
}

/// `kv-read` after setup.
struct KvRead {
    mount: String,
    /// Whether setup enabled the mount (and cleanup disables it).
    owned: bool,
    numkvs: usize,
    token: HeaderValue,
    /// The non-root reader, removed at cleanup.
    reader: Option<Reader>,
}

/// A token made for reading, and what was created for it.
struct Reader {
    policies: Vec<String>,
    token: Token,
    /// The token role and the entity of an identity reader.
    role: Option<String>,
    entity: Option<String>,
    /// Governing policies written for the reader (their `sys/policies/...` paths).
    governed: Vec<String>,
}

fn setup_read(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: ReadConfig = super::config_of(&ctx)?;
        let caller = caller_token(&ctx)?;
        let (mount, owned) = match &cfg.mount {
            Some(m) => (m.clone(), false),
            None => (ctx.unique.clone(), true),
        };
        let reader = if owned {
            with_mount(&ctx, &mount, async {
                seed(&ctx.api, &ctx.name, &mount, cfg.numkvs, cfg.kvsize).await?;
                if cfg.non_root {
                    Ok(Some(create_reader(&ctx, &mount, cfg.governing).await?))
                } else if let Some(kind) = &cfg.identity_policies {
                    Ok(Some(
                        create_identity_reader(&ctx, &mount, kind == "templated").await?,
                    ))
                } else {
                    Ok(None)
                }
            })
            .await?
        } else if cfg.non_root {
            Some(create_reader(&ctx, &mount, cfg.governing).await?)
        } else if let Some(kind) = &cfg.identity_policies {
            Some(create_identity_reader(&ctx, &mount, kind == "templated").await?)
        } else {
            None
        };
        let token = reader
            .as_ref()
            .map(|r| &r.token)
            .unwrap_or(&caller)
            .header()?;
        Ok(Box::new(KvRead {
            mount,
            owned,
            numkvs: cfg.numkvs,
            token,
            reader,
        }) as Box<dyn Workload>)
    })
}

/// Writes a policy granting only `read` on the mount's data and creates a token holding it
/// (plus `default`, as any token created without `no_default_policy` has).
async fn create_reader(
    ctx: &SetupContext,
    mount: &str,
    governing: bool,
) -> Result<Reader, BenchError> {
    let policy = format!("{}-read", ctx.unique);
    let mut governed = Vec::new();
    if governing {
        let rego = "package tresor.bench\n\nimport rego.v1\n\ndefault main := false\n\nmain if input.request.operation == \"read\"\n";
        for i in 0..3 {
            let path = format!("sys/policies/egp/{}-egp{i}", ctx.unique);
            ctx.api
                .expect_ok(
                    &format!("{}: writing {path}", ctx.name),
                    Method::POST,
                    &path,
                    Some(&json!({"policy": rego, "paths": [format!("{mount}/*")], "enforcement_level": "hard-mandatory"})),
                    None,
                )
                .await?;
            governed.push(path);
        }
        let path = format!("sys/policies/rgp/{}-rgp", ctx.unique);
        ctx.api
            .expect_ok(
                &format!("{}: writing {path}", ctx.name),
                Method::POST,
                &path,
                Some(&json!({"policy": rego, "enforcement_level": "hard-mandatory"})),
                None,
            )
            .await?;
        governed.push(path);
    }
    let mut token_policies = vec![policy.clone()];
    if governing {
        token_policies.push(format!("{}-rgp", ctx.unique));
    }
    let rules = format!("path \"{mount}/data/*\" {{\n  capabilities = [\"read\"]\n}}\n");
    ctx.api
        .check(
            &format!("{}: writing policy {policy}", ctx.name),
            ctx.api.client().put_policy(&policy, &rules),
        )
        .await?;
    let created = ctx
        .api
        .expect_ok(
            &format!("{}: creating a token with policy {policy}", ctx.name),
            Method::POST,
            "auth/token/create",
            Some(&json!({
                "policies": token_policies,
                "ttl": "2h",
                "display_name": "tresor-bench-reader",
            })),
            None,
        )
        .await;
    let created = match created {
        Ok(v) => v,
        Err(e) => {
            let _ = delete_policy(&ctx.api, &policy).await;
            return Err(e);
        }
    };
    let token = super::token::client_token(&created, &ctx.name)?;
    Ok(Reader {
        policies: vec![policy],
        token,
        role: None,
        entity: None,
        governed,
    })
}

/// Three policies granting read on the mount's data (and two unrelated grants), written
/// plainly or with identity templates that render to the same paths for the reader's entity,
/// and a token acting for that entity (a token role with `allowed_entity_aliases`).
async fn create_identity_reader(
    ctx: &SetupContext,
    mount: &str,
    templated: bool,
) -> Result<Reader, BenchError> {
    let u = &ctx.unique;
    let alias = format!("{u}-reader");
    let role = format!("{u}-role");
    let rules: [String; 3] = if templated {
        [
            "path \"{{identity.entity.metadata.mount}}/data/*\" { capabilities = [\"read\"] }".into(),
            "path \"{{identity.entity.metadata.mount}}/metadata/{{identity.entity.name}}/*\" { capabilities = [\"list\"] }".into(),
            "path \"cubbyhole/{{identity.entity.id}}/*\" { capabilities = [\"read\"] }".into(),
        ]
    } else {
        [
            format!("path \"{mount}/data/*\" {{ capabilities = [\"read\"] }}"),
            format!("path \"{mount}/metadata/{alias}/*\" {{ capabilities = [\"list\"] }}"),
            format!("path \"cubbyhole/{alias}/*\" {{ capabilities = [\"read\"] }}"),
        ]
    };
    let mut policies = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let name = format!("{u}-p{i}");
        ctx.api
            .check(
                &format!("{}: writing policy {name}", ctx.name),
                ctx.api.client().put_policy(&name, r),
            )
            .await?;
        policies.push(name);
    }
    let step = |what: &str| format!("{}: {what}", ctx.name);
    ctx.api
        .expect_ok(
            &step("creating a token role"),
            Method::POST,
            &format!("auth/token/roles/{role}"),
            Some(&json!({"allowed_policies": policies, "allowed_entity_aliases": [alias]})),
            None,
        )
        .await?;
    let created = ctx
        .api
        .expect_ok(
            &step("creating a token for an entity alias"),
            Method::POST,
            &format!("auth/token/create/{role}"),
            Some(&json!({"policies": policies, "entity_alias": alias, "ttl": "2h"})),
            None,
        )
        .await?;
    let entity = created["auth"]["entity_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    ctx.api
        .expect_ok(
            &step("naming the entity and setting its metadata"),
            Method::POST,
            &format!("identity/entity/id/{entity}"),
            Some(&json!({"name": alias, "metadata": {"mount": mount}})),
            None,
        )
        .await?;
    let token = super::token::client_token(&created, &ctx.name)?;
    Ok(Reader {
        policies,
        token,
        role: Some(role),
        entity: Some(entity),
        governed: Vec::new(),
    })
}

async fn delete_policy(api: &Api, policy: &str) -> Result<(), BenchError> {
    api.check(
        &format!("deleting policy {policy}"),
        api.client().delete_policy(policy),
    )
    .await
}

#[async_trait::async_trait]
impl Workload for KvRead {
    fn request(&self, target: &Target, worker: usize, seq: u64) -> Request<Full<Bytes>> {
        let i = spread(worker, seq, self.numkvs);
        target.request(
            Method::GET,
            data_uri(&self.mount, i as u64),
            Some(&self.token),
            Bytes::new(),
        )
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        let mut first_err = None;
        if let Some(r) = &self.reader {
            if let Err(e) = super::token::revoke(api, &r.token).await {
                first_err.get_or_insert(e);
            }
            for policy in &r.policies {
                if let Err(e) = delete_policy(api, policy).await {
                    first_err.get_or_insert(e);
                }
            }
            let extra = [
                r.role.as_ref().map(|n| format!("auth/token/roles/{n}")),
                r.entity
                    .as_ref()
                    .map(|id| format!("identity/entity/id/{id}")),
            ];
            for path in extra
                .into_iter()
                .flatten()
                .chain(r.governed.iter().cloned())
            {
                if let Err(e) = api
                    .expect_ok(
                        &format!("deleting {path}"),
                        Method::DELETE,
                        &path,
                        None,
                        None,
                    )
                    .await
                {
                    first_err.get_or_insert(e);
                }
            }
        }
        if self.owned
            && let Err(e) = disable(api, &self.mount).await
        {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// A prime above any key count, so multiplying by it modulo the count permutes the keys.
const SCATTER: u128 = 2_654_435_761;

/// Spreads the workers over the keys: worker `w` starts at its own offset and walks forward
/// through a scattered permutation of the keys, so that consecutive reads do not fall on
/// neighbouring keys (with a million keys, a linear walk would read one warm page after another
/// and flatter the store).
fn spread(worker: usize, seq: u64, len: usize) -> usize {
    let len = len as u128;
    let step = ((worker as u128) * 7919 + seq as u128) % len;
    (step * SCATTER % len) as usize
}

/// `kv-write` after setup.
struct KvWrite {
    mount: String,
    /// Whether setup enabled the mount (and cleanup disables it).
    owned: bool,
    numkvs: usize,
    /// With `distinct`: the number of the next new key.
    next_key: Option<AtomicU64>,
    body: Bytes,
    token: HeaderValue,
}

fn setup_write(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: WriteConfig = super::config_of(&ctx)?;
        let token = caller_token(&ctx)?.header()?;
        let (mount, owned) = match &cfg.mount {
            Some(m) => (m.clone(), false),
            None => (ctx.unique.clone(), true),
        };
        if owned {
            // One seeded key proves the mount is ready; the writes create the rest (the
            // distinct writes start by overwriting it).
            with_mount(
                &ctx,
                &mount,
                seed(&ctx.api, &ctx.name, &mount, 1, cfg.kvsize),
            )
            .await?;
        }
        let body = Bytes::from(serde_json::to_vec(&secret_body(cfg.kvsize)).unwrap_or_default());
        Ok(Box::new(KvWrite {
            mount,
            owned,
            numkvs: cfg.numkvs,
            next_key: cfg.distinct.then(|| AtomicU64::new(cfg.first_key)),
            body,
            token,
        }) as Box<dyn Workload>)
    })
}

impl KvWrite {
    /// The key a request writes: the next new one with `distinct`, else one of `numkvs`.
    fn key_for(&self, worker: usize, seq: u64) -> u64 {
        match &self.next_key {
            Some(n) => n.fetch_add(1, Ordering::Relaxed),
            None => spread(worker, seq, self.numkvs) as u64,
        }
    }
}

#[async_trait::async_trait]
impl Workload for KvWrite {
    fn request(&self, target: &Target, worker: usize, seq: u64) -> Request<Full<Bytes>> {
        let i = self.key_for(worker, seq);
        let mut req = target.request(
            Method::POST,
            data_uri(&self.mount, i),
            Some(&self.token),
            self.body.clone(),
        );
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        req
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        if self.owned {
            disable(api, &self.mount).await
        } else {
            Ok(())
        }
    }
}

/// `kv-list` after setup.
struct KvList {
    mount: String,
    uri: Uri,
    token: HeaderValue,
}

fn setup_list(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: ListConfig = super::config_of(&ctx)?;
        let token = caller_token(&ctx)?.header()?;
        let mount = ctx.unique.clone();
        with_mount(
            &ctx,
            &mount,
            seed(&ctx.api, &ctx.name, &mount, cfg.numkvs, cfg.kvsize),
        )
        .await?;
        Ok(Box::new(KvList {
            uri: uri(format!("/v1/{mount}/metadata/?list=true"))?,
            mount,
            token,
        }) as Box<dyn Workload>)
    })
}

#[async_trait::async_trait]
impl Workload for KvList {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        target.request(
            Method::GET,
            self.uri.clone(),
            Some(&self.token),
            Bytes::new(),
        )
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        disable(api, &self.mount).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_have_vault_benchmark_defaults_and_limits() {
        let c: ReadConfig = super::super::parse_config(&Value::Null).unwrap();
        assert_eq!((c.numkvs, c.kvsize, c.non_root), (1000, 1, false));
        let c: ListConfig = super::super::parse_config(&json!({"kvsize": 64})).unwrap();
        assert_eq!((c.numkvs, c.kvsize), (100, 64));
        assert!(
            check_read(&json!({"numkvs": 0}))
                .unwrap_err()
                .contains("numkvs")
        );
        assert!(
            check_write(&json!({"kvsize": 2_000_000}))
                .unwrap_err()
                .contains("kvsize")
        );
        assert!(check_read(&json!({"non_root": true})).is_ok());
        assert!(
            check_write(&json!({"non_root": true}))
                .unwrap_err()
                .contains("non_root")
        );
    }

    #[test]
    fn mounts_and_distinct_writes_are_options() {
        let c: WriteConfig = super::super::parse_config(&Value::Null).unwrap();
        assert!(!c.distinct && c.mount.is_none());
        assert!(check_write(&json!({"distinct": true, "mount": "scale/kv"})).is_ok());
        assert!(check_write(&json!({"distinct": true, "first_key": 500_000})).is_ok());
        assert!(
            check_write(&json!({"first_key": 5}))
                .unwrap_err()
                .contains("distinct")
        );
        assert!(check_read(&json!({"mount": "secret", "numkvs": 1_000_000})).is_ok());
        for bad in ["", "/secret", "secret/", "a//b", "a/../b", "sp ace", "q?x"] {
            let e = check_read(&json!({ "mount": bad })).unwrap_err();
            assert!(e.contains("mount"), "{bad:?}: {e}");
            assert!(check_write(&json!({ "mount": bad })).is_err(), "{bad:?}");
        }
        assert!(
            check_list(&json!({"mount": "secret"}))
                .unwrap_err()
                .contains("mount")
        );
    }

    fn target() -> Target {
        Target::new(
            "http://127.0.0.1:8200",
            &crate::client::TlsOptions::default(),
            std::time::Duration::from_secs(1),
        )
        .unwrap()
    }

    #[test]
    fn distinct_writes_go_to_new_keys_in_order() {
        let w = KvWrite {
            mount: "scale/kv".into(),
            owned: false,
            numkvs: 3,
            next_key: Some(AtomicU64::new(0)),
            body: Bytes::from_static(b"{}"),
            token: HeaderValue::from_static("t"),
        };
        let t = target();
        let later = KvWrite {
            mount: "scale/kv".into(),
            owned: false,
            numkvs: 3,
            next_key: Some(AtomicU64::new(700)),
            body: Bytes::from_static(b"{}"),
            token: HeaderValue::from_static("t"),
        };
        assert_eq!(
            later.request(&t, 9, 9).uri().path(),
            "/v1/scale/kv/data/key-700"
        );
        assert_eq!(
            later.request(&t, 0, 0).uri().path(),
            "/v1/scale/kv/data/key-701"
        );
        let paths: Vec<String> = [(0, 0), (5, 0), (0, 1), (2, 7), (1, 1)]
            .into_iter()
            .map(|(worker, seq)| w.request(&t, worker, seq).uri().path().to_owned())
            .collect();
        let expected: Vec<String> = (0..5)
            .map(|i| format!("/v1/scale/kv/data/key-{i}"))
            .collect();
        assert_eq!(paths, expected);
        let req = w.request(&t, 0, 0);
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.headers()["content-type"], "application/json");

        // Without distinct, writes cycle over numkvs keys.
        let w = KvWrite {
            next_key: None,
            ..w
        };
        let mut seen: Vec<String> = (0..9)
            .map(|seq| w.request(&t, 0, seq).uri().path().to_owned())
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3, "{seen:?}");
    }

    #[test]
    fn reads_of_an_existing_mount_stay_within_its_keys() {
        let r = KvRead {
            mount: "scale/kv".into(),
            owned: false,
            numkvs: 1_000_000,
            token: HeaderValue::from_static("t"),
            reader: None,
        };
        let t = target();
        for (worker, seq) in [(0, 0), (31, 999_999), (7, 123_456_789)] {
            let req = r.request(&t, worker, seq);
            assert_eq!(req.method(), Method::GET);
            let path = req.uri().path().to_owned();
            let n: u64 = path
                .strip_prefix("/v1/scale/kv/data/key-")
                .unwrap()
                .parse()
                .unwrap();
            assert!(n < 1_000_000, "{path}");
        }
    }

    #[test]
    fn spread_covers_every_key() {
        let len = 10;
        for w in 0..4 {
            let mut seen: Vec<usize> = (0..len as u64).map(|s| spread(w, s, len)).collect();
            seen.sort();
            assert_eq!(seen, (0..len).collect::<Vec<_>>());
        }
        assert_ne!(spread(0, 0, 1000), spread(1, 0, 1000));
        // Consecutive requests of one worker land far apart among a million keys.
        let len = 1_000_000;
        let gaps: Vec<usize> = (0..100u64)
            .map(|s| spread(3, s, len).abs_diff(spread(3, s + 1, len)))
            .collect();
        assert!(gaps.iter().filter(|&&g| g > 1000).count() > 90, "{gaps:?}");
        let mut all: Vec<usize> = (0..1000u64).map(|s| spread(2, s, 1000)).collect();
        all.sort();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }
}
