//! Measures what many outstanding leases cost: RSS growth while registering N leases through
//! the real request pipeline on durable embedded storage, then the time to revoke them all
//! with `sys/leases/revoke-prefix`. Usage: `cargo run --release -p tresor-core --example
//! lease_scale -- [N] [CONCURRENCY]` (defaults 1000000 and 64). Prints one JSON line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Map, json};
use tresor_core::{Core, CoreConfig, CoreRequest};
use tresor_physical::{Backend, EmbeddedBackend};
use tresor_sdk::framework::{Field, Kind, Path, SecretType, Table, TableBackend};
use tresor_sdk::{Operation, Response, SecretLease, SpecialPaths};

/// An engine whose only job is to hand out leased secrets and count revocations.
struct Counter(Arc<AtomicU64>);

fn engine(revoked: Arc<AtomicU64>) -> Arc<dyn tresor_sdk::LogicalBackend> {
    let table = Table::<Counter> {
        help: "lease scale probe",
        special: SpecialPaths::default(),
        paths: vec![
            Path::new("creds/{name}")
                .field(Field::new("name", Kind::Str, "name"))
                .op(Operation::Read, |_, _, f| {
                    Box::pin(async move {
                        let mut r = Response::json(json!({"user": f.string("name")}));
                        r.secret = Some(SecretLease {
                            secret_type: "c".into(),
                            ttl: Duration::from_secs(3600),
                            max_ttl: None,
                            renewable: true,
                            internal_data: Map::new(),
                        });
                        Ok(Some(r))
                    })
                }),
        ],
    };
    let secrets = vec![SecretType::<Counter> {
        name: "c",
        renew: None,
        revoke: |s, _, _| {
            Box::pin(async move {
                s.0.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            })
        },
    }];
    TableBackend::with_secrets(Counter(revoked), table, secrets)
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let conc: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = tempfile::tempdir().expect("tempdir");
    let physical: Arc<dyn Backend> =
        Arc::new(EmbeddedBackend::open(dir.path()).expect("open storage"));
    let revoked = Arc::new(AtomicU64::new(0));
    let mut core = Core::new(physical, CoreConfig::default());
    let r2 = revoked.clone();
    core.register_engine("probe", Arc::new(move |_| Ok(engine(r2.clone()))));
    let (_k, root) = core.init_dev(None).await.expect("init");
    let root = root.to_string();
    let mount = CoreRequest::new(
        Operation::Update,
        "sys/mounts/db",
        json!({"type": "probe"}).as_object().unwrap().clone(),
        Some(&root),
    );
    core.handle(mount).await.expect("mount");
    let rss_before = rss_kb();
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let core = core.clone();
        let next = next.clone();
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let r = CoreRequest::new(
                    Operation::Read,
                    format!("db/creds/u{}", i % 1000),
                    Map::new(),
                    Some(&root),
                );
                core.handle(r).await.expect("issue");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let register_secs = started.elapsed().as_secs_f64();
    let rss_after = rss_kb();
    let started = Instant::now();
    let rev = CoreRequest::new(
        Operation::Update,
        "sys/leases/revoke-prefix/db/",
        Map::new(),
        Some(&root),
    );
    core.handle(rev).await.expect("revoke-prefix");
    let revoke_secs = started.elapsed().as_secs_f64();
    let rss_end = rss_kb();
    println!(
        "{}",
        json!({
            "leases": n,
            "concurrency": conc,
            "register_seconds": (register_secs * 10.0).round() / 10.0,
            "register_per_second": (n as f64 / register_secs).round(),
            "rss_kb_before": rss_before,
            "rss_kb_after_register": rss_after,
            "rss_growth_mb": ((rss_after as f64 - rss_before as f64) / 1024.0).round(),
            "revoke_prefix_seconds": (revoke_secs * 10.0).round() / 10.0,
            "revoked": revoked.load(Ordering::Relaxed),
            "rss_kb_after_revoke": rss_end,
        })
    );
}
