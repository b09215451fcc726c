//! The AppRole method in-process, through a real dev core on in-memory storage and a clock
//! the tests move: roles and their sub-paths, secret IDs, logins (including the num_uses
//! race), expiry and tidy, renewal, wrapping, and bad input.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tresor_core::{Core, CoreConfig, CoreError, CoreRequest, CoreResponse};
use tresor_physical::InmemBackend;
use tresor_sdk::Operation::{self, Delete, Help, List, Read, Update};
use tresor_sdk::clock::ManualClock;

const T0: i64 = 1_700_000_000;

struct T {
    core: Core,
    clock: Arc<ManualClock>,
    root: String,
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => panic!("request data must be an object, got {other}"),
    }
}

async fn setup() -> T {
    let clock = Arc::new(ManualClock::at(T0));
    let cfg = CoreConfig {
        clock: clock.clone(),
        ..Default::default()
    };
    let mut core = Core::new(Arc::new(InmemBackend::new()), cfg);
    let c = clock.clone();
    core.register_credential(
        "approle",
        Arc::new(move |_| Ok(tresor_approle::backend_with_clock(c.clone()))),
    );
    let (_key, root) = core.init_dev(Some("root".into())).await.expect("dev init");
    let t = T {
        core,
        clock,
        root: root.to_string(),
    };
    t.ok(Update, "sys/auth/approle", json!({"type": "approle"}))
        .await;
    t
}

impl T {
    async fn req_from(
        &self,
        op: Operation,
        path: &str,
        data: Value,
        token: Option<&str>,
        remote: &str,
    ) -> Result<CoreResponse, CoreError> {
        let mut r = CoreRequest::new(op, path, obj(data), token);
        r.remote_addr = Some(remote.to_owned());
        self.core.handle(r).await
    }

    async fn req(&self, op: Operation, path: &str, data: Value) -> Result<CoreResponse, CoreError> {
        self.req_from(op, path, data, Some(&self.root), "127.0.0.1")
            .await
    }

    async fn ok(&self, op: Operation, path: &str, data: Value) -> CoreResponse {
        match self.req(op, path, data).await {
            Ok(r) => r,
            Err(e) => panic!("{op:?} {path} failed: {e}"),
        }
    }

    async fn data(&self, op: Operation, path: &str, data: Value) -> Map<String, Value> {
        self.ok(op, path, data)
            .await
            .response
            .and_then(|r| r.data)
            .unwrap_or_else(|| panic!("{op:?} {path}: no data"))
    }

    /// The error of a request that must fail.
    async fn err(&self, op: Operation, path: &str, data: Value) -> CoreError {
        match self.req(op, path, data).await {
            Ok(r) => panic!("{op:?} {path} succeeded: {:?}", r.response),
            Err(e) => e,
        }
    }

    /// A read that must find nothing (404).
    async fn absent(&self, path: &str) {
        let r = self.ok(Read, path, json!({})).await;
        assert!(
            r.response.as_ref().and_then(|r| r.data.as_ref()).is_none(),
            "{path} should not exist: {:?}",
            r.response
        );
    }

    async fn role_id(&self, role: &str) -> String {
        self.data(
            Read,
            &format!("auth/approle/role/{role}/role-id"),
            json!({}),
        )
        .await["role_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Generates a secret ID: (secret_id, accessor).
    async fn secret_id(&self, role: &str, body: Value) -> (String, String) {
        let d = self
            .data(Update, &format!("auth/approle/role/{role}/secret-id"), body)
            .await;
        (
            d["secret_id"].as_str().unwrap().to_owned(),
            d["secret_id_accessor"].as_str().unwrap().to_owned(),
        )
    }

    async fn login_from(
        &self,
        role_id: &str,
        secret_id: &str,
        remote: &str,
    ) -> Result<Value, CoreError> {
        let r = self
            .req_from(
                Update,
                "auth/approle/login",
                json!({"role_id": role_id, "secret_id": secret_id}),
                None,
                remote,
            )
            .await?;
        Ok(r.auth.expect("auth block"))
    }

    async fn login(&self, role_id: &str, secret_id: &str) -> Result<Value, CoreError> {
        self.login_from(role_id, secret_id, "127.0.0.1").await
    }
}

fn token(auth: &Value) -> String {
    auth["client_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn roles_are_created_read_listed_updated_and_deleted() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/Web",
        json!({"token_policies": "app,Other", "token_ttl": "20m", "token_max_ttl": "30m",
               "secret_id_ttl": "10m", "secret_id_num_uses": 40, "secret_id_bound_cidrs": "10.0.0.0/8"}),
    )
    .await;
    // Names are case-insensitive: the role is "web" whatever the spelling.
    let d = t.data(Read, "auth/approle/role/WEB", json!({})).await;
    assert_eq!(d["token_policies"], json!(["app", "other"]));
    assert_eq!(d["policies"], json!(["app", "other"]));
    assert_eq!(d["token_ttl"], 1200);
    assert_eq!(d["token_max_ttl"], 1800);
    assert_eq!(d["secret_id_ttl"], 600);
    assert_eq!(d["secret_id_num_uses"], 40);
    assert_eq!(d["bind_secret_id"], true);
    assert_eq!(d["local_secret_ids"], false);
    assert_eq!(d["secret_id_bound_cidrs"], json!(["10.0.0.0/8"]));
    assert_eq!(d["period"], 0);
    assert!(
        d.get("role_id").is_none(),
        "a role read does not show the role ID"
    );
    // An update changes only what it sends.
    t.ok(Update, "auth/approle/role/web", json!({"token_ttl": 60}))
        .await;
    let d = t.data(Read, "auth/approle/role/web", json!({})).await;
    assert_eq!(d["token_ttl"], 60);
    assert_eq!(d["secret_id_num_uses"], 40);
    // Legacy names are accepted with a warning.
    let r = t
        .ok(
            Update,
            "auth/approle/role/legacy",
            json!({"policies": ["p1"], "period": "1h", "bound_cidr_list": ["127.0.0.0/8"]}),
        )
        .await;
    let warnings = r.response.unwrap().warnings.join("\n");
    assert!(warnings.contains("bound_cidr_list"), "{warnings}");
    let d = t.data(Read, "auth/approle/role/legacy", json!({})).await;
    assert_eq!(d["token_policies"], json!(["p1"]));
    assert_eq!(d["token_period"], 3600);
    assert_eq!(d["secret_id_bound_cidrs"], json!(["127.0.0.0/8"]));
    let keys = t.data(List, "auth/approle/role", json!({})).await;
    assert_eq!(keys["keys"], json!(["legacy", "web"]));
    t.ok(Delete, "auth/approle/role/Web", json!({})).await;
    t.absent("auth/approle/role/web").await;
    t.absent("auth/approle/role/web/role-id").await;
    // Deleting what does not exist succeeds.
    t.ok(Delete, "auth/approle/role/web", json!({})).await;
}

#[tokio::test]
async fn bad_role_input_is_a_400_and_stores_nothing() {
    let t = setup().await;
    let cases = [
        (
            json!({"bind_secret_id": false}),
            "at least one constraint should be enabled on the role",
        ),
        (
            json!({"secret_id_bound_cidrs": "banana"}),
            "secret_id_bound_cidrs",
        ),
        (
            json!({"token_bound_cidrs": ["10.0.0.0/33"]}),
            "token_bound_cidrs",
        ),
        (
            json!({"secret_id_num_uses": -1}),
            "secret_id_num_uses cannot be negative",
        ),
        (json!({"token_num_uses": -1}), "token_num_uses"),
        (
            json!({"token_ttl": "2h", "token_max_ttl": "1h"}),
            "token_ttl",
        ),
        (json!({"token_type": "weird"}), "token_type"),
        (json!({"secret_id_ttl": "soon"}), "secret_id_ttl"),
        (json!({"role_id": "x".repeat(5000)}), "role_id"),
    ];
    for (body, want) in cases {
        let e = t.err(Update, "auth/approle/role/bad", body.clone()).await;
        assert!(matches!(e, CoreError::InvalidRequest(_)), "{body}: {e:?}");
        assert!(e.to_string().contains(want), "{body}: {e}");
        t.absent("auth/approle/role/bad").await;
    }
    let e = t.err(Update, "auth/approle/role/a*b", json!({})).await;
    assert!(e.to_string().contains("role_name"), "{e}");
    // local_secret_ids is fixed at creation.
    t.ok(
        Update,
        "auth/approle/role/loc",
        json!({"local_secret_ids": true}),
    )
    .await;
    let e = t
        .err(
            Update,
            "auth/approle/role/loc",
            json!({"local_secret_ids": false}),
        )
        .await;
    assert!(
        e.to_string()
            .contains("only be modified during role creation"),
        "{e}"
    );
    let d = t
        .data(Read, "auth/approle/role/loc/local-secret-ids", json!({}))
        .await;
    assert_eq!(d["local_secret_ids"], true);
    // A constraint may not be removed if it is the last one.
    let e = t
        .err(
            Update,
            "auth/approle/role/loc/bind-secret-id",
            json!({"bind_secret_id": false}),
        )
        .await;
    assert!(e.to_string().contains("constraint"), "{e}");
}

#[tokio::test]
async fn each_setting_has_its_own_sub_path() {
    let t = setup().await;
    t.ok(Update, "auth/approle/role/r", json!({})).await;
    let cases: &[(&str, Value, &str, Value)] = &[
        (
            "policies",
            json!({"policies": "a,b"}),
            "token_policies",
            json!(["a", "b"]),
        ),
        (
            "policies",
            json!({"token_policies": ["c"]}),
            "policies",
            json!(["c"]),
        ),
        (
            "secret-id-num-uses",
            json!({"secret_id_num_uses": 5}),
            "secret_id_num_uses",
            json!(5),
        ),
        (
            "secret-id-ttl",
            json!({"secret_id_ttl": "5m"}),
            "secret_id_ttl",
            json!(300),
        ),
        (
            "token-ttl",
            json!({"token_ttl": "10m"}),
            "token_ttl",
            json!(600),
        ),
        (
            "token-max-ttl",
            json!({"token_max_ttl": "1h"}),
            "token_max_ttl",
            json!(3600),
        ),
        (
            "token-num-uses",
            json!({"token_num_uses": 3}),
            "token_num_uses",
            json!(3),
        ),
        (
            "period",
            json!({"period": "30m"}),
            "token_period",
            json!(1800),
        ),
        (
            "period",
            json!({"token_period": "20m"}),
            "period",
            json!(1200),
        ),
        (
            "secret-id-bound-cidrs",
            json!({"secret_id_bound_cidrs": "127.0.0.1/32,10.0.0.0/8"}),
            "secret_id_bound_cidrs",
            json!(["127.0.0.1/32", "10.0.0.0/8"]),
        ),
        (
            "bound-cidr-list",
            json!({"bound_cidr_list": ["127.0.0.0/8"]}),
            "bound_cidr_list",
            json!(["127.0.0.0/8"]),
        ),
        (
            "token-bound-cidrs",
            json!({"token_bound_cidrs": ["127.0.0.1"]}),
            "token_bound_cidrs",
            json!(["127.0.0.1"]),
        ),
        (
            "bind-secret-id",
            json!({"bind_secret_id": false}),
            "bind_secret_id",
            json!(false),
        ),
    ];
    for (sub, body, key, want) in cases {
        let path = format!("auth/approle/role/R/{sub}");
        t.ok(Update, &path, body.clone()).await;
        let d = t.data(Read, &path, json!({})).await;
        assert_eq!(&d[*key], want, "{sub} {body}: {d:?}");
    }
    let d = t.data(Read, "auth/approle/role/r", json!({})).await;
    assert_eq!(d["token_ttl"], 600);
    assert_eq!(d["bind_secret_id"], false);
    // Delete resets each to its default.
    t.ok(Delete, "auth/approle/role/r/bind-secret-id", json!({}))
        .await;
    for sub in [
        "policies",
        "token-ttl",
        "token-max-ttl",
        "period",
        "secret-id-bound-cidrs",
    ] {
        t.ok(Delete, &format!("auth/approle/role/r/{sub}"), json!({}))
            .await;
    }
    let d = t.data(Read, "auth/approle/role/r", json!({})).await;
    assert_eq!(d["bind_secret_id"], true);
    assert_eq!(d["token_policies"], json!([]));
    assert_eq!(d["token_ttl"], 0);
    assert_eq!(d["token_period"], 0);
    assert_eq!(d["secret_id_bound_cidrs"], json!([]));
    // An update must send the value, and the role must exist.
    let e = t
        .err(Update, "auth/approle/role/r/token-ttl", json!({}))
        .await;
    assert!(e.to_string().contains("missing token_ttl"), "{e}");
    let e = t
        .err(
            Update,
            "auth/approle/role/nope/token-ttl",
            json!({"token_ttl": 5}),
        )
        .await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    t.absent("auth/approle/role/nope").await;
    t.absent("auth/approle/role/nope/policies").await;
}

#[tokio::test]
async fn login_gives_a_token_with_the_roles_settings() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"token_policies": ["app"], "token_ttl": "20m", "token_max_ttl": "30m"}),
    )
    .await;
    let role_id = t.role_id("app").await;
    let (sid, accessor) = t
        .secret_id("app", json!({"metadata": "{\"tag1\": \"production\"}"}))
        .await;
    let a = t.login(&role_id, &sid).await.unwrap();
    assert_eq!(a["policies"], json!(["app", "default"]));
    assert_eq!(a["lease_duration"], 1200);
    assert_eq!(a["renewable"], true);
    assert_eq!(a["metadata"]["role_name"], "app");
    assert_eq!(a["metadata"]["tag1"], "production");
    let tok = token(&a);
    let look = t
        .data(Update, "auth/token/lookup", json!({"token": tok}))
        .await;
    assert_eq!(look["path"], "auth/approle/login");
    assert_eq!(look["meta"]["role_name"], "app");
    // Unlimited uses: the secret ID still works, and still looks up.
    t.login(&role_id, &sid).await.unwrap();
    let d = t
        .data(
            Update,
            "auth/approle/role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": accessor}),
        )
        .await;
    assert_eq!(d["metadata"]["tag1"], "production");
    assert_eq!(d["secret_id_num_uses"], 0);
    assert_eq!(d["expiration_time"], "0001-01-01T00:00:00Z");
    assert!(d.get("secret_id").is_none());
}

#[tokio::test]
async fn bad_logins_are_4xx_with_one_message_and_change_nothing() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"secret_id_num_uses": 1}),
    )
    .await;
    let role_id = t.role_id("app").await;
    let (sid, _) = t.secret_id("app", json!({})).await;
    let login = |body: Value| async {
        t.req_from(Update, "auth/approle/login", body, None, "127.0.0.1")
            .await
    };
    for (body, want) in [
        (json!({}), "missing role_id"),
        (json!({"role_id": "  "}), "missing role_id"),
        (json!({"role_id": role_id}), "missing secret_id"),
        (
            json!({"role_id": "nope", "secret_id": sid}),
            "invalid role or secret ID",
        ),
        (
            json!({"role_id": role_id, "secret_id": "not-a-secret"}),
            "invalid role or secret ID",
        ),
        (
            json!({"role_id": role_id, "secret_id": "x".repeat(10_000)}),
            "invalid role or secret ID",
        ),
        (
            json!({"role_id": "x".repeat(10_000), "secret_id": sid}),
            "invalid role or secret ID",
        ),
        (
            json!({"role_id": role_id.to_uppercase(), "secret_id": sid}),
            "invalid role or secret ID",
        ),
    ] {
        let e = login(body.clone()).await.unwrap_err();
        assert!(matches!(e, CoreError::InvalidRequest(_)), "{body}: {e:?}");
        assert_eq!(e.to_string(), want, "{body}");
    }
    // None of that spent the single use.
    t.login(&role_id, &sid).await.unwrap();
    let e = t.login(&role_id, &sid).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid role or secret ID");
}

#[tokio::test]
async fn secret_id_uses_are_counted() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"secret_id_num_uses": 3}),
    )
    .await;
    let role_id = t.role_id("app").await;
    let (sid, accessor) = t.secret_id("app", json!({"num_uses": 2})).await;
    t.login(&role_id, &sid).await.unwrap();
    let d = t
        .data(
            Update,
            "auth/approle/role/app/secret-id/lookup",
            json!({"secret_id": sid}),
        )
        .await;
    assert_eq!(d["secret_id_num_uses"], 1);
    assert_eq!(d["secret_id_accessor"], accessor.as_str());
    t.login(&role_id, &sid).await.unwrap();
    assert!(t.login(&role_id, &sid).await.is_err());
    // Used up: gone with its accessor (a lookup finds nothing: no data, as in Vault).
    let r = t
        .ok(
            Update,
            "auth/approle/role/app/secret-id/lookup",
            json!({"secret_id": sid}),
        )
        .await;
    assert!(r.response.and_then(|r| r.data).is_none());
    let keys = t
        .ok(List, "auth/approle/role/app/secret-id", json!({}))
        .await;
    let listed = keys
        .response
        .and_then(|r| r.data)
        .map(|d| d["keys"].clone())
        .unwrap_or(json!([]));
    assert_eq!(listed, json!([]), "{listed}");
    // The role's own default applies when the request names none.
    let d = t
        .data(Update, "auth/approle/role/app/secret-id", json!({}))
        .await;
    assert_eq!(d["secret_id_num_uses"], 3);
    for (body, want) in [
        (json!({"num_uses": 4}), "num_uses cannot be higher"),
        (json!({"num_uses": 0}), "num_uses cannot be higher"),
        (json!({"num_uses": -1}), "num_uses cannot be negative"),
    ] {
        let e = t
            .err(Update, "auth/approle/role/app/secret-id", body.clone())
            .await;
        assert!(e.to_string().contains(want), "{body}: {e}");
    }
}

/// Issue 13: a secret ID with `num_uses=1` logs in exactly once, however many logins race.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_single_use_secret_id_logs_in_once_under_a_race() {
    let t = Arc::new(setup().await);
    t.ok(Update, "auth/approle/role/app", json!({})).await;
    let role_id = t.role_id("app").await;
    for round in 0..3 {
        let (sid, _) = t.secret_id("app", json!({"num_uses": 1})).await;
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (t, role_id, sid) = (t.clone(), role_id.clone(), sid.clone());
            tasks.push(tokio::spawn(async move { t.login(&role_id, &sid).await }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => assert_eq!(e.to_string(), "invalid role or secret ID"),
            }
        }
        assert_eq!(
            ok, 1,
            "round {round}: {ok} logins succeeded with a single-use secret ID"
        );
    }
    // Same for a secret ID with N uses: exactly N.
    let (sid, _) = t.secret_id("app", json!({"num_uses": 7})).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (t, role_id, sid) = (t.clone(), role_id.clone(), sid.clone());
        tasks.push(tokio::spawn(async move { t.login(&role_id, &sid).await }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 7);
}

#[tokio::test]
async fn cidr_bindings_refuse_other_addresses() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"secret_id_bound_cidrs": ["127.0.0.0/8"], "token_bound_cidrs": ["127.0.0.0/8"]}),
    )
    .await;
    let role_id = t.role_id("app").await;
    // The secret ID narrows the role's blocks; it cannot widen them.
    let (sid, _) = t
        .secret_id(
            "app",
            json!({"cidr_list": "127.0.0.2/32", "token_bound_cidrs": "127.0.0.2/32", "num_uses": 1}),
        )
        .await;
    for body in [
        json!({"cidr_list": "10.0.0.0/8"}),
        json!({"cidr_list": "0.0.0.0/0"}),
        json!({"token_bound_cidrs": "10.0.0.1"}),
        json!({"cidr_list": "nope"}),
    ] {
        let e = t
            .err(Update, "auth/approle/role/app/secret-id", body.clone())
            .await;
        assert!(matches!(e, CoreError::InvalidRequest(_)), "{body}: {e:?}");
    }
    let e = t.login_from(&role_id, &sid, "127.0.0.1").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("unauthorized through CIDR restrictions on the secret ID"),
        "{e}"
    );
    let e = t.login_from(&role_id, &sid, "10.1.1.1").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("unauthorized by CIDR restrictions on the role"),
        "{e}"
    );
    // Refused logins did not spend the single use.
    let a = t.login_from(&role_id, &sid, "127.0.0.2").await.unwrap();
    let tok = token(&a);
    let look = t
        .data(Update, "auth/token/lookup", json!({"token": tok}))
        .await;
    assert_eq!(look["bound_cidrs"], json!(["127.0.0.2/32"]));
    // The token works only from its block.
    let r = t
        .req_from(
            Read,
            "auth/token/lookup-self",
            json!({}),
            Some(&tok),
            "127.0.0.1",
        )
        .await;
    assert!(matches!(r, Err(CoreError::PermissionDenied)), "{r:?}");

    // A role without bind_secret_id logs in on its address binding alone.
    t.ok(
        Update,
        "auth/approle/role/nosecret",
        json!({"bind_secret_id": false, "secret_id_bound_cidrs": "127.0.0.1/32"}),
    )
    .await;
    let rid = t.role_id("nosecret").await;
    t.login_from(&rid, "", "127.0.0.1").await.unwrap();
    assert!(t.login_from(&rid, "", "127.0.0.9").await.is_err());
    let e = t
        .err(Update, "auth/approle/role/nosecret/secret-id", json!({}))
        .await;
    assert!(e.to_string().contains("bind_secret_id is not set"), "{e}");
}

#[tokio::test]
async fn expired_secret_ids_fail_and_tidy_removes_them() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"secret_id_ttl": "10m"}),
    )
    .await;
    let role_id = t.role_id("app").await;
    let (short, short_acc) = t.secret_id("app", json!({"ttl": 60})).await;
    let (long, long_acc) = t.secret_id("app", json!({})).await;
    let e = t
        .err(
            Update,
            "auth/approle/role/app/secret-id",
            json!({"ttl": "1h"}),
        )
        .await;
    assert!(e.to_string().contains("ttl cannot be longer"), "{e}");
    let d = t
        .data(
            Update,
            "auth/approle/role/app/secret-id/lookup",
            json!({"secret_id": short}),
        )
        .await;
    assert_eq!(d["secret_id_ttl"], 60);
    assert_eq!(
        d["expiration_time"],
        tresor_sdk::clock::rfc3339(T0 + 60).as_str()
    );
    t.clock.advance(Duration::from_secs(61));
    // Expired: a lookup by secret ID finds nothing (no data, as in Vault); by accessor it is
    // Vault's 404.
    let r = t
        .ok(
            Update,
            "auth/approle/role/app/secret-id/lookup",
            json!({"secret_id": short}),
        )
        .await;
    assert!(r.response.and_then(|r| r.data).is_none());
    let e = t
        .err(
            Update,
            "auth/approle/role/app/secret-id-accessor/lookup",
            json!({"secret_id_accessor": short_acc}),
        )
        .await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    let e = t.login(&role_id, &short).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid role or secret ID");
    t.login(&role_id, &long).await.unwrap();
    // Tidy (the periodic one here) removes the expired one and keeps the other.
    let (third, third_acc) = t.secret_id("app", json!({"ttl": 30})).await;
    t.clock.advance(Duration::from_secs(31));
    t.core
        .periodic_tick(T0 + 61 + 31)
        .await
        .expect("periodic tick");
    let keys = t
        .data(List, "auth/approle/role/app/secret-id", json!({}))
        .await;
    assert_eq!(keys["keys"], json!([long_acc]), "{keys:?}");
    assert!(t.login(&role_id, &third).await.is_err());
    let _ = third_acc;
    // The long one expires too, and the tidy endpoint (in the background) removes it.
    t.clock.advance(Duration::from_secs(600));
    let r = t.ok(Update, "auth/approle/tidy/secret-id", json!({})).await;
    assert!(r.response.unwrap().warnings[0].contains("Tidy operation successfully started"),);
    let mut gone = false;
    for _ in 0..200 {
        let r = t
            .ok(List, "auth/approle/role/app/secret-id", json!({}))
            .await;
        let n = r
            .response
            .and_then(|r| r.data)
            .map_or(0, |d| d["keys"].as_array().map_or(0, Vec::len));
        if n == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "tidy did not remove the expired secret ID");
}

#[tokio::test]
async fn secret_ids_are_destroyed_by_value_or_accessor() {
    let t = setup().await;
    t.ok(Update, "auth/approle/role/app", json!({})).await;
    t.ok(Update, "auth/approle/role/other", json!({})).await;
    let role_id = t.role_id("app").await;
    let (a, _) = t.secret_id("app", json!({})).await;
    let (b, b_acc) = t.secret_id("app", json!({})).await;
    let keys = t
        .data(List, "auth/approle/role/app/secret-id", json!({}))
        .await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2);
    t.ok(
        Update,
        "auth/approle/role/app/secret-id/destroy",
        json!({"secret_id": a}),
    )
    .await;
    assert!(t.login(&role_id, &a).await.is_err());
    // Destroying again succeeds; an accessor of another role is unknown here.
    t.ok(
        Delete,
        "auth/approle/role/app/secret-id/destroy",
        json!({"secret_id": a}),
    )
    .await;
    let e = t
        .err(
            Update,
            "auth/approle/role/other/secret-id-accessor/destroy",
            json!({"secret_id_accessor": b_acc}),
        )
        .await;
    assert!(matches!(e, CoreError::NotFound(_)), "{e:?}");
    assert!(
        e.to_string()
            .contains("failed to find accessor entry for secret_id_accessor"),
        "{e}"
    );
    t.login(&role_id, &b).await.unwrap();
    t.ok(
        Update,
        "auth/approle/role/app/secret-id-accessor/destroy",
        json!({"secret_id_accessor": b_acc}),
    )
    .await;
    assert!(t.login(&role_id, &b).await.is_err());
    for (path, body, want) in [
        ("secret-id/lookup", json!({}), "missing secret_id"),
        (
            "secret-id-accessor/lookup",
            json!({}),
            "missing secret_id_accessor",
        ),
        (
            "secret-id-accessor/lookup",
            json!({"secret_id_accessor": "../../role/app"}),
            "failed to find accessor entry",
        ),
    ] {
        let e = t
            .err(Update, &format!("auth/approle/role/app/{path}"), body)
            .await;
        assert!(e.to_string().contains(want), "{path}: {e}");
    }
    // Paths of a role that does not exist.
    for (op, path) in [
        (Update, "secret-id"),
        (List, "secret-id"),
        (Update, "custom-secret-id"),
        (Update, "secret-id/lookup"),
    ] {
        let e = t
            .err(
                op,
                &format!("auth/approle/role/ghost/{path}"),
                json!({"secret_id": "x"}),
            )
            .await;
        assert_eq!(e.to_string(), "role \"ghost\" does not exist", "{path}");
        assert!(matches!(e, CoreError::InvalidRequest(_)));
    }
}

#[tokio::test]
async fn custom_secret_ids_and_role_ids() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"role_id": "my-role-id"}),
    )
    .await;
    assert_eq!(t.role_id("app").await, "my-role-id");
    let d = t
        .data(
            Update,
            "auth/approle/role/app/custom-secret-id",
            json!({"secret_id": "testsecretid", "ttl": 600, "num_uses": 50}),
        )
        .await;
    assert_eq!(d["secret_id"], "testsecretid");
    assert_eq!(d["secret_id_ttl"], 600);
    assert_eq!(d["secret_id_num_uses"], 50);
    let e = t
        .err(
            Update,
            "auth/approle/role/app/custom-secret-id",
            json!({"secret_id": "testsecretid"}),
        )
        .await;
    assert!(e.to_string().contains("already registered"), "{e}");
    let e = t
        .err(Update, "auth/approle/role/app/custom-secret-id", json!({}))
        .await;
    assert!(e.to_string().contains("missing secret_id"), "{e}");
    let e = t
        .err(
            Update,
            "auth/approle/role/app/secret-id",
            json!({"metadata": "{not json"}),
        )
        .await;
    assert!(e.to_string().contains("failed to parse metadata"), "{e}");
    t.login("my-role-id", "testsecretid").await.unwrap();
    // A new role ID replaces the old one.
    t.ok(
        Update,
        "auth/approle/role/app/role-id",
        json!({"role_id": "rotated"}),
    )
    .await;
    assert!(t.login("my-role-id", "testsecretid").await.is_err());
    t.login("rotated", "testsecretid").await.unwrap();
    // A role ID in use by another role is refused, and nothing changes.
    t.ok(Update, "auth/approle/role/other", json!({})).await;
    let e = t
        .err(
            Update,
            "auth/approle/role/other/role-id",
            json!({"role_id": "rotated"}),
        )
        .await;
    assert!(e.to_string().contains("already in use"), "{e}");
    let e = t
        .err(
            Update,
            "auth/approle/role/other",
            json!({"role_id": "rotated"}),
        )
        .await;
    assert!(e.to_string().contains("already in use"), "{e}");
    assert_ne!(t.role_id("other").await, "rotated");
    let e = t
        .err(Update, "auth/approle/role/app/role-id", json!({}))
        .await;
    assert!(e.to_string().contains("missing role_id"), "{e}");
    t.login("rotated", "testsecretid").await.unwrap();
}

#[tokio::test]
async fn renewal_follows_the_role() {
    let t = setup().await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"token_ttl": "10m", "token_max_ttl": "1h"}),
    )
    .await;
    let role_id = t.role_id("app").await;
    let (sid, _) = t.secret_id("app", json!({})).await;
    let tok = token(&t.login(&role_id, &sid).await.unwrap());
    let renew = |inc: &'static str| {
        let tok = tok.clone();
        let t = &t;
        async move {
            t.core
                .handle(CoreRequest::new(
                    Update,
                    "auth/token/renew-self",
                    obj(json!({"increment": inc})),
                    Some(&tok),
                ))
                .await
        }
    };
    let r = renew("30m").await.unwrap();
    assert_eq!(
        r.auth.unwrap()["lease_duration"],
        600,
        "capped at token_ttl"
    );
    // The role's current token_ttl applies at renewal.
    t.ok(
        Update,
        "auth/approle/role/app/token-ttl",
        json!({"token_ttl": "2m"}),
    )
    .await;
    let r = renew("30m").await.unwrap();
    assert_eq!(r.auth.unwrap()["lease_duration"], 120);
    // Near the role's token_max_ttl the renewal is shortened.
    t.clock.advance(Duration::from_secs(3600 - 50));
    let r = renew("30m").await.unwrap();
    let ttl = r.auth.unwrap()["lease_duration"].as_u64().unwrap();
    assert!(ttl <= 50, "{ttl}");

    // Once the role is gone the token cannot be renewed, nor after the role is re-created.
    let (sid, _) = t.secret_id("app", json!({})).await;
    let tok2 = token(&t.login(&role_id, &sid).await.unwrap());
    t.ok(Delete, "auth/approle/role/app", json!({})).await;
    let e = renew("1m").await.unwrap_err();
    assert!(
        e.to_string().contains("does not exist during renewal"),
        "{e}"
    );
    t.ok(Update, "auth/approle/role/app", json!({})).await;
    let e = t
        .core
        .handle(CoreRequest::new(
            Update,
            "auth/token/renew-self",
            Map::new(),
            Some(&tok2),
        ))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("created again"), "{e}");
    // The old secret IDs went with the old role.
    assert!(t.login(&t.role_id("app").await, &sid).await.is_err());
}

#[tokio::test]
async fn a_wrapped_secret_id_unwraps_once_and_logs_in() {
    let t = setup().await;
    t.ok(Update, "auth/approle/role/app", json!({})).await;
    let role_id = t.role_id("app").await;
    let mut r = CoreRequest::new(
        Update,
        "auth/approle/role/app/secret-id",
        Map::new(),
        Some(&t.root),
    );
    r.wrap_ttl = Some(Duration::from_secs(120));
    let r = t.core.handle(r).await.unwrap();
    let info = r.wrap_info.expect("wrap_info");
    assert_eq!(info["creation_path"], "auth/approle/role/app/secret-id");
    let wrapping = info["token"].as_str().unwrap().to_owned();
    let unwrap = || {
        t.core.handle(CoreRequest::new(
            Update,
            "sys/wrapping/unwrap",
            Map::new(),
            Some(&wrapping),
        ))
    };
    let d = unwrap().await.unwrap().response.unwrap().data.unwrap();
    let sid = d["secret_id"].as_str().unwrap();
    t.login(&role_id, sid).await.unwrap();
    assert!(unwrap().await.is_err(), "a wrapping token unwraps once");
}

#[tokio::test]
async fn help_describes_the_paths() {
    let t = setup().await;
    for path in [
        "auth/approle/",
        "auth/approle/login",
        "auth/approle/role/x",
        "auth/approle/role/x/secret-id",
        "auth/approle/tidy/secret-id",
    ] {
        let d = t.data(Help, path, json!({})).await;
        let text = d["help"].as_str().unwrap();
        assert!(text.contains("## DESCRIPTION"), "{path}: {text}");
    }
    let d = t.data(Help, "auth/approle/role/x", json!({})).await;
    let text = d["help"].as_str().unwrap();
    for field in [
        "bind_secret_id",
        "secret_id_bound_cidrs",
        "token_policies",
        "local_secret_ids",
    ] {
        assert!(text.contains(field), "{field}");
    }
}

/// Neither role IDs nor secret IDs are storage keys: the mount's storage names them only
/// by HMAC.
#[tokio::test]
async fn ids_are_never_storage_keys() {
    let physical = Arc::new(InmemBackend::new());
    let clock = Arc::new(ManualClock::at(T0));
    let mut core = Core::new(
        physical.clone(),
        CoreConfig {
            clock: clock.clone(),
            ..Default::default()
        },
    );
    let c = clock.clone();
    core.register_credential(
        "approle",
        Arc::new(move |_| Ok(tresor_approle::backend_with_clock(c.clone()))),
    );
    core.init_dev(Some("root".into())).await.unwrap();
    let t = T {
        core,
        clock,
        root: "root".into(),
    };
    t.ok(Update, "sys/auth/approle", json!({"type": "approle"}))
        .await;
    t.ok(
        Update,
        "auth/approle/role/app",
        json!({"role_id": "visible-role-id"}),
    )
    .await;
    let (sid, _) = t.secret_id("app", json!({})).await;
    t.ok(
        Update,
        "auth/approle/role/app/custom-secret-id",
        json!({"secret_id": "visible-secret-id"}),
    )
    .await;
    let mut stack = vec![String::new()];
    let mut keys = Vec::new();
    while let Some(p) = stack.pop() {
        for k in tresor_physical::Backend::list(&*physical, &p)
            .await
            .unwrap()
        {
            let full = format!("{p}{k}");
            if k.ends_with('/') {
                stack.push(full);
            } else {
                keys.push(full);
            }
        }
    }
    assert!(keys.iter().any(|k| k.contains("secret_id/")), "{keys:?}");
    for k in &keys {
        for secret in ["visible-role-id", "visible-secret-id", sid.as_str()] {
            assert!(!k.contains(secret), "{secret} in storage key {k}");
        }
    }
}
