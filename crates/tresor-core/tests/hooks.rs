//! Issue 11: the pipeline's hooks. A quota runs before authentication, governing policies run
//! after the ACL (refusing, or allowing with warnings), metrics see every request; refusals are
//! audited like any denial.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, json};
use tresor_core::hooks::{PipelineHooks, RequestFacts};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest};
use tresor_physical::InmemBackend;
use tresor_sdk::Operation::{Read, Update};

#[derive(Default)]
struct Hooks {
    limited: AtomicUsize,
    governed: AtomicUsize,
    observed: AtomicUsize,
    failures: AtomicUsize,
}

impl PipelineHooks for Hooks {
    fn rate_limit(&self, f: &RequestFacts<'_>) -> Result<(), CoreError> {
        self.limited.fetch_add(1, Ordering::SeqCst);
        assert!(f.policies.is_none(), "the quota runs before authentication");
        if f.remote_addr == Some("10.9.9.9") {
            return Err(CoreError::RateLimited(
                "request path \"secret/\": rate limit quota exceeded".into(),
            ));
        }
        Ok(())
    }
    fn govern(&self, f: &RequestFacts<'_>) -> Result<Vec<String>, CoreError> {
        self.governed.fetch_add(1, Ordering::SeqCst);
        assert!(
            f.policies.is_some(),
            "governing policies run after authentication"
        );
        if f.path == "secret/data/forbidden" {
            return Err(CoreError::PermissionDenied);
        }
        if f.mount_type == "kv" && f.operation == Read {
            return Ok(vec!["advisory: reads are watched".into()]);
        }
        Ok(Vec::new())
    }
    fn observe(&self, _f: &RequestFacts<'_>, ok: bool, _elapsed: std::time::Duration) {
        self.observed.fetch_add(1, Ordering::SeqCst);
        if !ok {
            self.failures.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn hooks_run_in_their_place_in_the_pipeline() {
    let hooks = Arc::new(Hooks::default());
    let cfg = CoreConfig {
        hooks: hooks.clone(),
        ..CoreConfig::default()
    };
    let mut core = Core::new(Arc::new(InmemBackend::new()), cfg);
    core.register_engine("kv", Arc::new(|_| Ok(tresor_kv::backend())));
    core.init_dev(Some("root".into())).await.unwrap();
    let req = |op, path: &str, data: serde_json::Value, remote: &str| {
        let mut r = CoreRequest::new(
            op,
            path,
            data.as_object().cloned().unwrap_or_default(),
            Some("root"),
        );
        r.remote_addr = Some(remote.to_owned());
        r
    };
    core.handle(req(
        Update,
        "sys/mounts/secret",
        json!({"type": "kv", "options": {"version": "2"}}),
        "127.0.0.1",
    ))
    .await
    .unwrap();
    core.handle(req(
        Update,
        "secret/data/app",
        json!({"data": {"k": "v"}}),
        "127.0.0.1",
    ))
    .await
    .unwrap();
    let r = core
        .handle(req(Read, "secret/data/app", json!({}), "127.0.0.1"))
        .await
        .unwrap();
    assert_eq!(
        r.response.unwrap().warnings,
        ["advisory: reads are watched"]
    );
    assert!(matches!(
        core.handle(req(Read, "secret/data/forbidden", json!({}), "127.0.0.1"))
            .await,
        Err(CoreError::PermissionDenied)
    ));
    let before = hooks.governed.load(Ordering::SeqCst);
    assert!(matches!(
        core.handle(req(Read, "secret/data/app", json!({}), "10.9.9.9"))
            .await,
        Err(CoreError::RateLimited(_))
    ));
    assert_eq!(
        hooks.governed.load(Ordering::SeqCst),
        before,
        "a rate-limited request goes no further"
    );
    // A token never reaches the quota hook, so even a bad one is rate limited first.
    let mut bad = CoreRequest::new(Read, "secret/data/app", Map::new(), Some("not-a-token"));
    bad.remote_addr = Some("10.9.9.9".into());
    assert!(matches!(
        core.handle(bad).await,
        Err(CoreError::RateLimited(_))
    ));
    assert_eq!(hooks.observed.load(Ordering::SeqCst), 6);
    assert_eq!(hooks.failures.load(Ordering::SeqCst), 3);
    assert_eq!(hooks.limited.load(Ordering::SeqCst), 6);
}
