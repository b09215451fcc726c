//! `userpass-login`: logins with a username and password, which are bound by bcrypt.
//!
//! Setup enables `userpass` at a path unique to the run and creates `numusers` users
//! (`bench-0`, `bench-1`, ...) with one random password and the `default` policy; each request
//! logs one of them in. Cleanup disables the mount, which deletes the users and revokes every
//! token the logins made.
//!
//! A login costs one bcrypt verification at the server's cost, tens of milliseconds of one
//! core, which dwarfs everything else a login does. So setup also measures, in this process
//! and before the load starts, how long one bcrypt hash at that cost takes on this machine
//! (the median of a few), and the report shows the logins per second next to the bound that
//! cost sets: cores / seconds per hash. `bcrypt_cost` is the server's cost (10 for Tresor,
//! Vault and OpenBao alike: Go's `bcrypt.DefaultCost`); `server_cores` defaults to this
//! machine's cores, right when the server runs here too (as in `bench/compare.sh`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::Full;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{BoxFuture, Kind, SetupContext, Workload, auth};
use crate::client::{Api, Target};
use crate::error::BenchError;

/// The `userpass-login` registry entry.
pub const LOGIN: Kind = Kind {
    name: "userpass-login",
    aliases: &["userpass_auth"],
    summary: "log in with userpass (numusers = 10); reports the bcrypt bound (bcrypt_cost = 10)",
    needs_token: true,
    check_config: check,
    setup,
};

/// How many bcrypt hashes setup times (the median is reported).
const HASH_SAMPLES: usize = 5;

/// `userpass-login` options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// How many users to create and log in in turn.
    #[serde(default = "default_numusers")]
    numusers: usize,
    /// The server's bcrypt cost, for measuring the bound.
    #[serde(default = "default_cost")]
    bcrypt_cost: u32,
    /// The server's cores, for the bound (default: this machine's).
    #[serde(default)]
    server_cores: Option<usize>,
}

fn default_numusers() -> usize {
    10
}

fn default_cost() -> u32 {
    10
}

fn check(v: &Value) -> Result<(), String> {
    let c: Config = super::parse_config(v)?;
    if c.numusers == 0 {
        return Err("numusers must be at least 1".into());
    }
    if !(4..=31).contains(&c.bcrypt_cost) {
        return Err("bcrypt_cost must be 4 to 31".into());
    }
    if c.server_cores == Some(0) {
        return Err("server_cores must be at least 1".into());
    }
    Ok(())
}

/// One bcrypt hash at `cost`, timed `samples` times on the blocking pool, one after the other;
/// the median.
pub(crate) async fn time_bcrypt(cost: u32, samples: usize) -> Result<Duration, BenchError> {
    tokio::task::spawn_blocking(move || {
        let mut times: Vec<Duration> = (0..samples.max(1))
            .map(|_| {
                let start = Instant::now();
                let h = bcrypt::hash("tresor-bench-bcrypt-probe", cost);
                let took = start.elapsed();
                h.map(|_| took)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| BenchError::Runtime(format!("bcrypt: {e}")))?;
        times.sort();
        Ok(times[times.len() / 2])
    })
    .await
    .map_err(|e| BenchError::Runtime(e.to_string()))?
}

/// `userpass-login` after setup.
struct UserpassLogin {
    mount: String,
    /// One login URI per user.
    uris: Vec<Uri>,
    body: Bytes,
    cost: u32,
    hash: Duration,
    cores: usize,
}

fn setup(ctx: SetupContext) -> BoxFuture<'static, Result<Box<dyn Workload>, BenchError>> {
    Box::pin(async move {
        let cfg: Config = super::config_of(&ctx)?;
        let mount = ctx.unique.clone();
        auth::enable(&ctx, "userpass", &mount).await?;
        let password = uuid::Uuid::new_v4().simple().to_string();
        if let Err(e) = create_users(&ctx, &mount, &password, cfg.numusers).await {
            let _ = auth::disable(&ctx.api, &mount).await;
            return Err(e);
        }
        let uris = (0..cfg.numusers)
            .map(|i| auth::login_uri(&mount, &format!("login/bench-{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        let hash = time_bcrypt(cfg.bcrypt_cost, HASH_SAMPLES).await?;
        let cores = cfg.server_cores.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        Ok(Box::new(UserpassLogin {
            body: auth::body(&json!({ "password": password })),
            mount,
            uris,
            cost: cfg.bcrypt_cost,
            hash,
            cores,
        }) as Box<dyn Workload>)
    })
}

async fn create_users(
    ctx: &SetupContext,
    mount: &str,
    password: &str,
    count: usize,
) -> Result<(), BenchError> {
    let body = json!({ "password": password, "token_policies": ["default"], "token_ttl": "1h" });
    for i in 0..count {
        ctx.api
            .expect_ok(
                &format!("{}: creating user bench-{i}", ctx.name),
                http::Method::POST,
                &format!("auth/{mount}/users/bench-{i}"),
                Some(&body),
                None,
            )
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Workload for UserpassLogin {
    fn request(&self, target: &Target, worker: usize, seq: u64) -> Request<Full<Bytes>> {
        let i =
            ((worker as u64).wrapping_mul(31).wrapping_add(seq) % self.uris.len() as u64) as usize;
        auth::login_request(target, self.uris[i].clone(), self.body.clone())
    }

    fn notes(&self, ok_per_second: f64) -> Map<String, Value> {
        bound_notes(self.cost, self.hash, self.cores, ok_per_second)
    }

    async fn cleanup(&self, api: &Api) -> Result<(), BenchError> {
        auth::disable(api, &self.mount).await
    }
}

/// The bcrypt figures of a run: the cost, one hash's time, the bound it sets on `cores` and
/// how close the measured rate came to it.
fn bound_notes(cost: u32, hash: Duration, cores: usize, ok_per_second: f64) -> Map<String, Value> {
    let ms = hash.as_secs_f64() * 1e3;
    let bound = if hash.is_zero() {
        0.0
    } else {
        cores as f64 / hash.as_secs_f64()
    };
    let fraction = if bound > 0.0 {
        ok_per_second / bound
    } else {
        0.0
    };
    let mut m = Map::new();
    m.insert("bcrypt_cost".into(), json!(cost));
    m.insert("bcrypt_ms_per_hash".into(), json!(round(ms, 3)));
    m.insert("cores".into(), json!(cores));
    m.insert("bcrypt_bound_per_second".into(), json!(round(bound, 1)));
    m.insert("fraction_of_bound".into(), json!(round(fraction, 3)));
    m.insert(
        "summary".into(),
        json!(format!(
            "bcrypt cost {cost}: {ms:.1} ms per hash here, so at most {bound:.1} logins/s on {cores} core{}; measured {ok_per_second:.1}/s = {:.1}% of that bound",
            if cores == 1 { "" } else { "s" },
            fraction * 100.0
        )),
    );
    m
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_is_cores_over_one_hash() {
        let n = bound_notes(10, Duration::from_millis(50), 2, 36.0);
        assert_eq!(n["bcrypt_bound_per_second"], 40.0);
        assert_eq!(n["fraction_of_bound"], 0.9);
        assert_eq!(n["bcrypt_ms_per_hash"], 50.0);
        let s = n["summary"].as_str().unwrap();
        assert!(
            s.contains("at most 40.0 logins/s on 2 cores") && s.contains("90.0%"),
            "{s}"
        );
    }

    #[tokio::test]
    async fn bcrypt_is_timed() {
        let t = time_bcrypt(4, 3).await.unwrap();
        assert!(t > Duration::ZERO && t < Duration::from_secs(5), "{t:?}");
    }

    #[test]
    fn config_is_checked() {
        check(&json!({})).unwrap();
        check(&json!({"numusers": 3, "bcrypt_cost": 12, "server_cores": 8})).unwrap();
        for bad in [
            json!({"numusers": 0}),
            json!({"bcrypt_cost": 3}),
            json!({"server_cores": 0}),
        ] {
            assert!(check(&bad).is_err(), "{bad}");
        }
    }
}
