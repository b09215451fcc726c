//! What one governing-policy evaluation costs, in microseconds of one core (issue 18):
//! building a request's input document, and evaluating a compiled policy against it.
//!
//!     cargo run --release -p tresor-govern --example eval_cost [ITERATIONS]
//!
//! The policies are the benchmark's (`bench/kv-read-governed.hcl`: `main` true for reads)
//! and a business-hours policy that reads the token, the entity and the time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::{Map, Value};
use tresor_core::governing::GoverningSet;
use tresor_core::hooks::{GoverningFacts, RequestFacts, TokenFacts};
use tresor_govern::input::Sections;
use tresor_govern::{Compiled, DEFAULT_EVAL_TIMEOUT};
use tresor_sdk::identity::{AliasInfo, EntityInfo, GroupInfo};

const BENCH: &str = "package tresor.bench\n\nimport rego.v1\n\ndefault main := false\n\nmain if input.request.operation == \"read\"\n";

const HOURS: &str = r#"package tresor.hours
import rego.v1
default main := false
main if {
  input.time.hour >= 0
  input.time.weekday != "Sunday"
  "default" in input.token.policies
  some g in input.identity.groups
  g.name == "ops"
}
deny contains "outside business hours" if input.time.hour > 23
"#;

fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let set = GoverningSet::default();
    let data: Map<String, Value> = Map::new();
    let policies = vec!["default".to_owned(), "reader".to_owned()];
    let meta = BTreeMap::from([("team".to_owned(), "ops".to_owned())]);
    let resolved = tresor_core::identity::Resolved {
        info: Arc::new(EntityInfo {
            id: "e1".into(),
            name: "alice".into(),
            metadata: BTreeMap::new(),
            aliases: vec![AliasInfo {
                id: "a1".into(),
                name: "alice".into(),
                mount_accessor: "auth_userpass_1".into(),
                mount_path: "auth/userpass/".into(),
                mount_type: "userpass".into(),
                ..AliasInfo::default()
            }],
            groups: vec![GroupInfo {
                id: "g1".into(),
                name: "ops".into(),
            }],
            disabled: false,
        }),
        policies: vec!["bench-rgp".into()],
        generation: 1,
    };
    let token = TokenFacts {
        accessor: "acc",
        policies: &policies,
        meta: &meta,
        display_name: "userpass-alice",
        path: "auth/userpass/login/alice",
        token_type: "service",
        entity_id: "e1",
        creation_time: 1_796_266_800,
        expire_time: Some(1_796_270_400),
        ttl: 3600,
        explicit_max_ttl: 0,
        period: 0,
        num_uses: 0,
        orphan: false,
        renewable: true,
        role: "",
    };
    let g = GoverningFacts {
        set: &set,
        data: &data,
        policy_override: false,
        wrap_ttl: None,
        token: Some(token),
        identity: Some(&resolved),
        mfa_sent: false,
        now: UNIX_EPOCH + Duration::from_secs(1_796_266_800),
    };
    let facts = RequestFacts {
        path: "secret/data/bench/0",
        operation: tresor_sdk::Operation::Read,
        remote_addr: Some("127.0.0.1"),
        mount_path: "secret/",
        mount_type: "kv",
        unauthenticated: false,
        policies: Some(&policies),
        governing: Some(g),
    };

    let all = Sections::all();
    let build = per_call(n, || {
        std::hint::black_box(tresor_govern::input::value(&facts, &g, &all));
    });
    println!("input document, every section: {build:.2} µs");
    let input = tresor_govern::input::value(&facts, &g, &all);
    for (name, text) in [("bench (main if read)", BENCH), ("business hours", HOURS)] {
        let c = Compiled::compile("p", text, DEFAULT_EVAL_TIMEOUT).expect("compiles");
        let d = c.evaluate(&input).expect("evaluates");
        assert!(d.allowed, "{name}: {d:?}");
        let mut wanted = Sections::none();
        wanted.add(c.reads());
        let build = per_call(n, || {
            std::hint::black_box(tresor_govern::input::value(&facts, &g, &wanted));
        });
        println!(
            "input document, the sections {name} reads ({:?}): {build:.2} µs",
            c.reads()
        );
        let eval = per_call(n, || {
            std::hint::black_box(c.evaluate_now(&input).expect("evaluates"));
        });
        println!("one evaluation, {name}: {eval:.2} µs");
        let reused = per_call(n, || {
            std::hint::black_box(c.evaluate(&input).expect("evaluates"));
        });
        println!("one decision reused, {name}: {reused:.2} µs");
    }
}
