//! The method in-process, on in-memory storage, at bcrypt's lowest cost (4) so the tests run
//! fast; the cost is a parameter of the same code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tresor_sdk::{
    Caller, Connection, LogicalBackend, LogicalError, MountView, Operation, Request, Response,
    Result, SecretRef, Storage,
};

use crate::Userpass;
use crate::login::INVALID_CREDENTIALS;

#[derive(Default)]
struct MemStorage(std::sync::Mutex<BTreeMap<String, Vec<u8>>>);

#[async_trait]
impl Storage for MemStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.0.lock().unwrap().get(key).cloned())
    }
    async fn put(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.0.lock().unwrap().insert(key.to_owned(), value);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let map = self.0.lock().unwrap();
        let mut out: Vec<String> = Vec::new();
        for key in map.keys().filter_map(|k| k.strip_prefix(prefix)) {
            let child = match key.find('/') {
                Some(i) => &key[..=i],
                None => key,
            };
            if out.last().map(String::as_str) != Some(child) {
                out.push(child.to_owned());
            }
        }
        Ok(out)
    }
}

struct T {
    up: Userpass,
    storage: Arc<MemStorage>,
}

impl T {
    fn new() -> T {
        T {
            up: Userpass::new(4),
            storage: Arc::new(MemStorage::default()),
        }
    }

    fn request(&self, op: Operation, path: &str, data: Value, remote: Option<&str>) -> Request {
        Request {
            operation: op,
            path: path.into(),
            data: data.as_object().cloned().unwrap_or_default(),
            storage: self.storage.clone(),
            mount: Arc::new(MountView {
                mount_point: "auth/userpass/".into(),
                mount_type: "userpass".into(),
                mount_accessor: "auth_userpass_1234".into(),
                default_lease_ttl: Duration::from_secs(3600),
                max_lease_ttl: Duration::from_secs(7200),
                options: Default::default(),
                system: None,
            }),
            caller: Caller::default(),
            secret: None,
            connection: Arc::new(Connection {
                remote_addr: remote.map(str::to_owned),
                peer_certificates: Vec::new(),
            }),
            headers: Vec::new(),
            raw_body: None,
            deadline: None,
        }
    }

    async fn call(&self, op: Operation, path: &str, data: Value) -> Result<Option<Response>> {
        self.up
            .handle(self.request(op, path, data, Some("127.0.0.1")))
            .await
    }

    async fn write(&self, path: &str, data: Value) {
        self.call(Operation::Update, path, data)
            .await
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }

    async fn login_from(
        &self,
        user: &str,
        password: &str,
        remote: &str,
    ) -> Result<tresor_sdk::Auth> {
        let r = self
            .up
            .handle(self.request(
                Operation::Update,
                &format!("login/{user}"),
                json!({ "password": password }),
                Some(remote),
            ))
            .await?;
        Ok(r.and_then(|r| r.auth).expect("an auth block"))
    }

    async fn login(&self, user: &str, password: &str) -> Result<tresor_sdk::Auth> {
        self.login_from(user, password, "127.0.0.1").await
    }

    async fn renew(&self, auth: &tresor_sdk::Auth) -> Result<Option<Response>> {
        let mut req = self.request(Operation::Update, "login/x", json!({}), None);
        req.secret = Some(SecretRef {
            lease_id: "auth/userpass/login/x".into(),
            secret_type: "auth".into(),
            internal_data: auth.internal_data.clone(),
            increment: None,
        });
        self.up.renew_auth(req).await
    }

    fn stored_keys(&self) -> Vec<String> {
        self.storage.0.lock().unwrap().keys().cloned().collect()
    }

    fn verifications(&self) -> u64 {
        self.up.state.passwords.verifications()
    }
}

fn data(r: Option<Response>) -> Map<String, Value> {
    r.and_then(|r| r.data).expect("data")
}

#[tokio::test]
async fn users_crud_and_list() {
    let t = T::new();
    t.write(
        "users/alice",
        json!({"password": "pw-alice", "token_policies": "Reader, other", "token_ttl": "1h", "token_max_ttl": "2h"}),
    )
    .await;
    t.write(
        "users/bob",
        json!({"password": "pw-bob", "policies": ["x"]}),
    )
    .await;
    let d = data(
        t.call(Operation::Read, "users/alice", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(d["token_policies"], json!(["other", "reader"]));
    assert_eq!(d["token_ttl"], 3600);
    assert_eq!(d["token_max_ttl"], 7200);
    assert_eq!((&d["ttl"], &d["max_ttl"]), (&json!(3600), &json!(7200)));
    assert!(
        !d.contains_key("password") && !d.contains_key("password_hash"),
        "{d:?}"
    );
    let d = data(
        t.call(Operation::Read, "users/bob", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(d["token_policies"], json!(["x"]), "legacy name");
    // Vault shows the legacy name too (hvac's read_user reads data["policies"]).
    assert_eq!(d["policies"], json!(["x"]), "legacy name shown: {d:?}");
    assert!(
        !d.contains_key("ttl"),
        "unset settings have no legacy name: {d:?}"
    );
    let d = data(t.call(Operation::List, "users/", json!({})).await.unwrap());
    assert_eq!(d["keys"], json!(["alice", "bob"]));
    // An update changes only what it sends: the password stays.
    t.write("users/alice", json!({"token_ttl": "30m"})).await;
    let d = data(
        t.call(Operation::Read, "users/alice", json!({}))
            .await
            .unwrap(),
    );
    assert_eq!(d["token_ttl"], 1800);
    assert_eq!(d["token_policies"], json!(["other", "reader"]));
    t.login("alice", "pw-alice").await.unwrap();
    t.call(Operation::Delete, "users/bob", json!({}))
        .await
        .unwrap();
    assert!(
        t.call(Operation::Read, "users/bob", json!({}))
            .await
            .unwrap()
            .is_none()
    );
    let d = data(t.call(Operation::List, "users", json!({})).await.unwrap());
    assert_eq!(d["keys"], json!(["alice"]));
}

#[tokio::test]
async fn usernames_are_case_insensitive() {
    let t = T::new();
    for (path, want) in [
        ("users/Alice", Some("users/alice")),
        ("users/ALICE/password", Some("users/alice/password")),
        ("users/Alice/policies", Some("users/alice/policies")),
        ("login/Alice", Some("login/alice")),
        ("users/alice", None),
    ] {
        assert_eq!(t.up.canonical_path(path).as_deref(), want, "{path}");
    }
    t.write("users/alice", json!({"password": "pw"})).await;
    // A direct caller that skips the core's folding still logs in.
    t.login("ALICE", "pw").await.unwrap();
}

#[tokio::test]
async fn a_login_is_an_auth_for_the_core_to_mint() {
    let t = T::new();
    t.write(
        "users/alice",
        json!({"password": "pw-alice", "token_policies": ["reader"], "token_ttl": 600, "token_num_uses": 5}),
    )
    .await;
    let a = t.login("alice", "pw-alice").await.unwrap();
    assert!(a.client_token.is_empty(), "the core mints the token");
    assert_eq!(a.display_name, "alice");
    assert_eq!(
        a.metadata.get("username").map(String::as_str),
        Some("alice")
    );
    assert_eq!(a.alias.as_ref().map(|a| a.name.as_str()), Some("alice"));
    assert_eq!(a.policies, ["reader"]);
    assert_eq!(a.ttl, Duration::from_secs(600));
    assert_eq!(a.num_uses, 5);
    assert!(a.renewable);
    let internal = serde_json::to_string(&a.internal_data).unwrap();
    assert!(!internal.contains("pw-alice"), "{internal}");
    assert!(!internal.contains("$2"), "no hash in the token: {internal}");
    // The login path is unauthenticated; nothing else is.
    let sp = t.up.special_paths();
    assert!(tresor_sdk::path_matches_special(
        &sp.unauthenticated,
        "login/alice"
    ));
    assert!(!tresor_sdk::path_matches_special(
        &sp.unauthenticated,
        "users/alice"
    ));
}

/// Issue 13: a wrong password and an unknown user give the same error and both cost one
/// bcrypt verification at the mount's cost (counted, not timed: a count does not flake).
#[tokio::test]
async fn wrong_password_and_unknown_user_are_indistinguishable() {
    let t = T::new();
    t.write("users/alice", json!({"password": "pw-alice"}))
        .await;
    let before = t.verifications();
    let wrong = t.login("alice", "nope").await.unwrap_err();
    assert_eq!(t.verifications(), before + 1);
    let unknown = t.login("mallory", "nope").await.unwrap_err();
    assert_eq!(
        t.verifications(),
        before + 2,
        "an unknown user still costs a verify"
    );
    let invalid_name = t.login("-bad..name", "nope").await.unwrap_err();
    assert_eq!(t.verifications(), before + 3);
    for e in [&wrong, &unknown, &invalid_name] {
        assert!(
            matches!(e, LogicalError::InvalidRequest(m) if m == INVALID_CREDENTIALS),
            "{e:?}"
        );
    }
    assert_eq!(wrong.to_string(), unknown.to_string());
    // The dummy hash has the mount's cost, so its verification costs what a real one does.
    assert_eq!(t.up.state.passwords.dummy_cost(), 4);
    let at_10 = crate::password::Passwords::new(10);
    assert_eq!(at_10.dummy_cost(), 10);
    // A missing password is refused before any lookup, for every user alike.
    let e = t.login("alice", "").await.unwrap_err();
    assert_eq!(e.to_string(), "missing password");
}

#[tokio::test]
async fn bad_input_is_refused_and_stores_nothing() {
    let t = T::new();
    let cases = [
        ("users/alice", json!({}), "missing password"),
        ("users/alice", json!({"password": ""}), "missing password"),
        (
            "users/-alice",
            json!({"password": "pw"}),
            "invalid username",
        ),
        (
            "users/.alice",
            json!({"password": "pw"}),
            "invalid username",
        ),
        (
            "users/alice.",
            json!({"password": "pw"}),
            "invalid username",
        ),
        (
            "users/al%ice",
            json!({"password": "pw"}),
            "invalid username",
        ),
        (
            "users/alice",
            json!({"password": "pw", "password_hash": "$2b$04$x"}),
            "only one of",
        ),
        (
            "users/alice",
            json!({"password_hash": "plain"}),
            "not a bcrypt hash",
        ),
        (
            "users/alice",
            json!({"password": "x".repeat(73)}),
            "72 bytes",
        ),
        (
            "users/alice",
            json!({"password": "pw", "token_bound_cidrs": ["nope"]}),
            "token_bound_cidrs",
        ),
        (
            "users/alice",
            json!({"password": "pw", "token_ttl": "2h", "token_max_ttl": "1h"}),
            "token_ttl",
        ),
        (
            "users/alice",
            json!({"password": "pw", "token_ttl": "soon"}),
            "token_ttl",
        ),
        (
            "users/alice",
            json!({"password": "pw", "token_type": "odd"}),
            "token_type",
        ),
        (
            "users/alice/password",
            json!({"password": "pw"}),
            "does not exist",
        ),
        (
            "users/alice/policies",
            json!({"token_policies": "a"}),
            "does not exist",
        ),
    ];
    for (path, body, want) in cases {
        let e = t
            .call(Operation::Update, path, body.clone())
            .await
            .expect_err(path);
        assert!(
            matches!(e, LogicalError::InvalidRequest(_)),
            "{path} {body}: {e:?}"
        );
        assert!(e.to_string().contains(want), "{path} {body}: {e}");
        assert!(t.stored_keys().is_empty(), "{path} {body} stored something");
    }
    // An existing user is not changed by a refused update.
    t.write("users/alice", json!({"password": "pw", "token_ttl": 60}))
        .await;
    let before = t.storage.0.lock().unwrap().clone();
    for body in [
        json!({"token_max_ttl": 30}),
        json!({"password": ""}),
        json!({"password": "new", "token_bound_cidrs": "banana"}),
    ] {
        t.call(Operation::Update, "users/alice", body.clone())
            .await
            .expect_err("refused");
        assert_eq!(*t.storage.0.lock().unwrap(), before, "{body}");
    }
    let e = t
        .call(Operation::Update, "users/alice/password", json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "missing password");
    let e = t
        .call(Operation::Update, "users/alice/policies", json!({}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("token_policies"), "{e}");
    assert_eq!(*t.storage.0.lock().unwrap(), before);
}

#[tokio::test]
async fn stored_users_hold_a_hash_and_never_the_password() {
    let t = T::new();
    t.write("users/alice", json!({"password": "pw-secret-value"}))
        .await;
    let raw = t
        .storage
        .0
        .lock()
        .unwrap()
        .get("user/alice")
        .cloned()
        .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    assert!(!raw.contains("pw-secret-value"), "{raw}");
    assert!(raw.contains("$2b$04$"), "bcrypt at the mount's cost: {raw}");
    let user = crate::store::load(&*t.storage, "alice")
        .await
        .unwrap()
        .unwrap();
    let printed = format!("{user:?}");
    assert!(!printed.contains("$2b$"), "{printed}");
    // A newer format is refused, not half-read.
    t.storage.0.lock().unwrap().insert(
        "user/carol".into(),
        br#"{"version": 99, "password_hash": "x"}"#.to_vec(),
    );
    let e = t.login("carol", "pw").await.unwrap_err();
    assert!(e.to_string().contains("newer than this build"), "{e}");
}

#[tokio::test]
async fn passwords_change_and_can_be_imported_as_hashes() {
    let t = T::new();
    t.write("users/alice", json!({"password": "old"})).await;
    let a = t.login("alice", "old").await.unwrap();
    t.write("users/alice/password", json!({"password": "new"}))
        .await;
    assert_eq!(
        t.login("alice", "old").await.unwrap_err().to_string(),
        INVALID_CREDENTIALS
    );
    t.login("alice", "new").await.unwrap();
    let e = t.renew(&a).await.unwrap_err();
    assert!(e.to_string().contains("password has changed"), "{e}");
    // A hash made elsewhere (here at cost 5) works as the password it hashes.
    let h = bcrypt::hash("imported", 5).unwrap();
    t.write("users/bob", json!({"password_hash": h})).await;
    t.login("bob", "imported").await.unwrap();
    let h = bcrypt::hash("again", 4).unwrap();
    t.write("users/bob/password", json!({"password_hash": h}))
        .await;
    t.login("bob", "again").await.unwrap();
}

#[tokio::test]
async fn renewal_follows_the_user() {
    let t = T::new();
    t.write(
        "users/alice",
        json!({"password": "pw", "token_policies": ["a", "b"], "token_ttl": 300, "token_max_ttl": 900}),
    )
    .await;
    let a = t.login("alice", "pw").await.unwrap();
    let r = t.renew(&a).await.unwrap().and_then(|r| r.auth).unwrap();
    assert_eq!(r.ttl, Duration::from_secs(300));
    assert_eq!(r.max_ttl, Duration::from_secs(900));
    // The user's current settings apply.
    t.write("users/alice", json!({"token_ttl": 120})).await;
    let r = t.renew(&a).await.unwrap().and_then(|r| r.auth).unwrap();
    assert_eq!(r.ttl, Duration::from_secs(120));
    // Same policies in another order (and `default`) are the same policies.
    t.write("users/alice/policies", json!({"policies": "b, a, default"}))
        .await;
    t.renew(&a).await.unwrap();
    t.write("users/alice/policies", json!({"token_policies": ["a"]}))
        .await;
    let e = t.renew(&a).await.unwrap_err();
    assert!(e.to_string().contains("policies have changed"), "{e}");
    let a = t.login("alice", "pw").await.unwrap();
    t.renew(&a).await.unwrap();
    t.call(Operation::Delete, "users/alice", json!({}))
        .await
        .unwrap();
    let e = t.renew(&a).await.unwrap_err();
    assert!(e.to_string().contains("no longer exists"), "{e}");
    // Recreated with the same password: a new hash, a new salt, still not renewed.
    t.write(
        "users/alice",
        json!({"password": "pw", "token_policies": ["a"]}),
    )
    .await;
    assert!(t.renew(&a).await.is_err());
}

#[tokio::test]
async fn bound_cidrs_are_checked_against_the_logins_address() {
    let t = T::new();
    t.write(
        "users/alice",
        json!({"password": "pw", "token_bound_cidrs": "127.0.0.1/32, 10.0.0.0/8"}),
    )
    .await;
    let a = t.login_from("alice", "pw", "10.1.2.3").await.unwrap();
    assert_eq!(a.bound_cidrs, ["127.0.0.1/32", "10.0.0.0/8"]);
    let e = t.login_from("alice", "pw", "192.0.2.1").await.unwrap_err();
    assert!(matches!(e, LogicalError::PermissionDenied), "{e:?}");
    // The address is checked only after the password: a stranger learns nothing.
    let e = t.login_from("alice", "bad", "192.0.2.1").await.unwrap_err();
    assert_eq!(e.to_string(), INVALID_CREDENTIALS);
    // No address at all is in no block.
    let r =
        t.up.handle(t.request(
            Operation::Update,
            "login/alice",
            json!({"password": "pw"}),
            None,
        ))
        .await;
    assert!(matches!(r, Err(LogicalError::PermissionDenied)));
}

#[tokio::test]
async fn every_path_has_help() {
    let t = T::new();
    for p in [
        "",
        "users",
        "users/alice",
        "users/alice/password",
        "users/alice/policies",
        "login/alice",
    ] {
        let h = t.up.help(p).unwrap_or_else(|| panic!("no help for {p:?}"));
        assert!(!h["help"].as_str().unwrap().is_empty(), "{p}");
    }
    let api = t.up.openapi_paths();
    assert!(api.contains_key("/login/{username}"), "{:?}", api.keys());
}

/// bcrypt runs on the blocking pool: logins on a single-threaded runtime still overlap with
/// other work on that thread.
#[tokio::test(flavor = "current_thread")]
async fn bcrypt_does_not_block_the_runtime() {
    let t = Arc::new(T::new());
    t.write("users/alice", json!({"password": "pw"})).await;
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    // A cost-8 hash takes far longer than one scheduling round; if it ran on this thread the
    // ticker could not run meanwhile.
    let slow = crate::password::Passwords::new(8);
    slow.hash("pw".into()).await.unwrap();
    ticker.abort();
    assert!(ticks.load(std::sync::atomic::Ordering::Relaxed) > 10);
}
