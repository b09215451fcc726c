//! `ldap-login`: logins through the LDAP auth method against a real directory server the
//! caller names (issue 14), reported next to that server's own bind rate.
//!
//! Setup enables `ldap` at a path unique to the run and writes its `config` from the workload's
//! `ldap` block, passed through as Vault takes it (`url`, `userdn`, `userattr`, `groupdn`,
//! `binddn`, ...); each request logs `username` in with `password`; cleanup disables the mount.
//!
//! Before the load, setup measures the directory's own rate for what every login must do at
//! least once, a simple bind as the user: `reference_connections` connections (default 32, the
//! load's usual client count) binding as `user_dn` in a loop for `reference_seconds`. The
//! report shows the logins per second as a share of that rate.
//!
//! ```hcl
//! test "ldap-login" "ldap" {
//!   config {
//!     username = "alice"
//!     password = "alicepw"
//!     user_dn  = "uid=alice,ou=users,dc=example,dc=org"
//!     ldap {
//!       url      = "ldap://127.0.0.1:3890"
//!       userdn   = "ou=users,dc=example,dc=org"
//!       userattr = "uid"
//!       groupdn  = "ou=groups,dc=example,dc=org"
//!     }
//!   }
//! }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{BoxFuture, Kind, SetupContext, Workload, auth};
use crate::client::{Api, Target};
use crate::error::BenchError;

/// The `ldap-login` registry entry.
pub const LOGIN: Kind = Kind {
    name: "ldap-login",
    aliases: &["ldap_auth"],
    summary: "log in through auth/ldap against a real directory (ldap, username, password, user_dn); reports the directory's own bind rate",
    needs_token: true,
    check_config: check,
    setup,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// `auth/ldap/config`, as Vault takes it.
    #[serde(default)]
    ldap: Map<String, Value>,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// The user's DN, for the reference binds.
    #[serde(default)]
    user_dn: String,
    #[serde(default = "default_connections")]
    reference_connections: usize,
    #[serde(default = "default_seconds")]
    reference_seconds: u64,
}

fn default_connections() -> usize {
    32
}

fn default_seconds() -> u64 {
    3
}

fn check(v: &Value) -> Result<(), String> {
    let c: Config = super::parse_config(v)?;
    if c.reference_connections == 0 || c.reference_connections > 1024 {
        return Err("reference_connections must be 1 to 1024".into());
    }
    if c.reference_seconds == 0 || c.reference_seconds > 600 {
        return Err("reference_seconds must be 1 to 600".into());
    }
    Ok(())
}

/// The first URL of the config's comma-separated `url`.
fn first_url(ldap: &Map<String, Value>) -> Option<String> {
    ldap.get("url")
        .and_then(Value::as_str)
        .and_then(|u| u.split(',').next())
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
}

/// `connections` connections binding as `dn` in a loop for `seconds`: binds per second.
async fn bind_rate(
    url: &str,
    dn: &str,
    password: &str,
    connections: usize,
    seconds: u64,
) -> Result<f64, BenchError> {
    let fail = |e: String| BenchError::Runtime(format!("ldap-login reference binds: {e}"));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + Duration::from_secs(seconds);
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (url, dn, password, done) = (
            url.to_owned(),
            dn.to_owned(),
            password.to_owned(),
            done.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let (conn, mut ldap) = ldap3::LdapConnAsync::new(&url)
                .await
                .map_err(|e| e.to_string())?;
            ldap3::drive!(conn);
            while Instant::now() < stop {
                ldap.simple_bind(&dn, &password)
                    .await
                    .and_then(|r| r.success())
                    .map_err(|e| e.to_string())?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            let _ = ldap.unbind().await;
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| fail(e.to_string()))?.map_err(fail)?;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// `ldap-login` after setup.
struct LdapLogin {
    mount: String,
    uri: Uri,
    body: Bytes,
    binds_per_second: f64,
    connections: usize,
}

fn setup(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: Config = super::config_of(&ctx)?;
        let missing = |what: &str| BenchError::WorkloadConfig {
            workload: ctx.name.clone(),
            message: format!("{what} is required"),
        };
        let url = first_url(&cfg.ldap).ok_or_else(|| missing("ldap.url"))?;
        if cfg.username.is_empty() {
            return Err(missing("username"));
        }
        if cfg.user_dn.is_empty() {
            return Err(missing("user_dn"));
        }
        let binds_per_second = bind_rate(
            &url,
            &cfg.user_dn,
            &cfg.password,
            cfg.reference_connections,
            cfg.reference_seconds,
        )
        .await?;
        let mount = ctx.unique.clone();
        auth::enable(&ctx, "ldap", &mount).await?;
        let configured = ctx
            .api
            .expect_ok(
                &format!("{}: writing auth/{mount}/config", ctx.name),
                Method::POST,
                &format!("auth/{mount}/config"),
                Some(&Value::Object(cfg.ldap.clone())),
                None,
            )
            .await;
        if let Err(e) = configured {
            let _ = auth::disable(&ctx.api, &mount).await;
            return Err(e);
        }
        Ok(Box::new(LdapLogin {
            uri: auth::login_uri(&mount, &format!("login/{}", cfg.username))?,
            body: auth::body(&json!({ "password": cfg.password })),
            mount,
            binds_per_second,
            connections: cfg.reference_connections,
        }) as Box<dyn Workload>)
    })
}

#[async_trait::async_trait]
impl Workload for LdapLogin {
    fn request(&self, target: &Target, _worker: usize, _seq: u64) -> Request<Full<Bytes>> {
        auth::login_request(target, self.uri.clone(), self.body.clone())
    }

    fn notes(&self, ok_per_second: f64) -> Map<String, Value> {
        reference_notes(self.binds_per_second, self.connections, ok_per_second)
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        auth::disable(api, &self.mount).await
    }
}

/// The logins per second as a share of the directory's own bind rate.
fn reference_notes(binds: f64, connections: usize, ok_per_second: f64) -> Map<String, Value> {
    let share = if binds > 0.0 {
        ok_per_second / binds
    } else {
        0.0
    };
    let mut m = Map::new();
    m.insert("directory_binds_per_second".into(), json!(binds.round()));
    m.insert("reference_connections".into(), json!(connections));
    m.insert(
        "fraction_of_binds".into(),
        json!((share * 1000.0).round() / 1000.0),
    );
    m.insert(
        "summary".into(),
        json!(format!(
            "the directory's own simple binds as the user, {connections} connections: {binds:.0}/s; logins {ok_per_second:.0}/s = {:.1}% of that",
            share * 100.0
        )),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        check(&json!({})).unwrap();
        check(&json!({"ldap": {"url": "ldap://127.0.0.1:1"}, "username": "a", "password": "b", "user_dn": "uid=a"})).unwrap();
        for bad in [
            json!({"reference_connections": 0}),
            json!({"reference_seconds": 0}),
            json!({"unknown": 1}),
        ] {
            assert!(check(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_first_url_is_used_for_the_reference() {
        let m = json!({"url": " ldap://a:1 , ldap://b:2"});
        assert_eq!(
            first_url(m.as_object().unwrap()).as_deref(),
            Some("ldap://a:1")
        );
        assert_eq!(first_url(json!({}).as_object().unwrap()), None);
    }

    #[test]
    fn the_share_is_logins_over_binds() {
        let n = reference_notes(1000.0, 32, 700.0);
        assert_eq!(n["fraction_of_binds"], 0.7);
        assert!(n["summary"].as_str().unwrap().contains("70.0%"));
    }
}
