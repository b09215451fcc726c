//! The architecture's invariants that a search of the source can check (docs/architecture.md):
//! a change that breaks one fails here, in CI, before review.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("read source");
                out.push((p, text));
            }
        }
    }
    out
}

fn crate_src(name: &str) -> Vec<(PathBuf, String)> {
    sources(&workspace().join("crates").join(name).join("src"))
}

/// The core's modules whose file names pass `keep`, with their text.
fn core_modules(keep: impl Fn(&str) -> bool) -> Vec<(PathBuf, String)> {
    crate_src("tresor-core")
        .into_iter()
        .filter(|(p, _)| keep(&p.file_name().unwrap().to_string_lossy()))
        .collect()
}

/// Only the policy module can build the value dispatch requires.
#[test]
fn only_the_policy_module_builds_authorized() {
    for entry in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        for (path, text) in crate_src(&name) {
            let builds = text.contains("Authorized {") && !text.contains("pub struct Authorized {");
            if name == "tresor-policy" {
                continue;
            }
            assert!(!builds, "{} builds an Authorized", path.display());
        }
    }
    // And the core reaches an engine's handler in exactly one place, which takes it.
    let calls: Vec<PathBuf> = crate_src("tresor-core")
        .into_iter()
        .filter(|(_, t)| t.contains("backend.handle("))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(calls.len(), 1, "engine handlers called from {calls:?}");
    let core = std::fs::read_to_string(calls[0].clone()).unwrap();
    assert_eq!(core.matches("backend.handle(").count(), 1);
    assert!(core.contains("authorized: tresor_policy::Authorized"));
}

/// Engines never depend on the core or the HTTP layer.
#[test]
fn engines_never_depend_on_the_core() {
    for engine in [
        "tresor-kv",
        "tresor-pki",
        "tresor-userpass",
        "tresor-approle",
        "tresor-cert",
        "tresor-ldap",
        "tresor-transit",
        "tresor-ssh",
        "tresor-totp",
        "tresor-database",
        "tresor-otp",
        "tresor-password",
        "tresor-jwt",
        "tresor-sdk",
        "tresor-policy",
        "tresor-physical",
    ] {
        let toml =
            std::fs::read_to_string(workspace().join("crates").join(engine).join("Cargo.toml"))
                .unwrap();
        let deps = toml.split("[dev-dependencies]").next().unwrap();
        for forbidden in ["tresor-core", "tresor-http"] {
            assert!(!deps.contains(forbidden), "{engine} depends on {forbidden}");
        }
    }
}

/// Only the HTTP crate (and the clients) know status codes.
#[test]
fn only_the_http_edge_knows_status_codes() {
    for name in [
        "tresor-core",
        "tresor-sdk",
        "tresor-kv",
        "tresor-pki",
        "tresor-userpass",
        "tresor-approle",
        "tresor-cert",
        "tresor-ldap",
        "tresor-transit",
        "tresor-ssh",
        "tresor-totp",
        "tresor-database",
        "tresor-otp",
        "tresor-password",
        "tresor-policy",
        "tresor-physical",
        "tresor-seal",
    ] {
        for (path, text) in crate_src(name) {
            assert!(
                !text.contains("StatusCode"),
                "{} mentions HTTP status codes",
                path.display()
            );
        }
    }
}

/// The built-in backends (`sys/`, `auth/token/`, `cubbyhole/`, `identity/`) are built from
/// subsystem handles, never from the core: their modules never name `Core` or its `Inner`
/// (the core's few operations `sys/` exposes come through `control::Control`).
#[test]
fn built_in_backends_never_hold_the_core() {
    let builtins = core_modules(|f| {
        f.starts_with("system")
            || f.starts_with("identity_")
            || f == "token_backend.rs"
            || f == "cubbyhole.rs"
    });
    // system.rs, its siblings, token_backend.rs, cubbyhole.rs, identity_backend.rs, ...
    assert!(builtins.len() >= 10, "found only {builtins:?}");
    let names_core = |text: &str| {
        text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| word == "Core" || word == "Inner")
    };
    for (path, text) in &builtins {
        // Doc comments may speak of the core; code may not name it.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!names_core(&code), "{} names the core", path.display());
    }
}

/// Ways of declaring or reading a request's field by its name, which typed inputs replace.
const BY_NAME: [&str; 12] = [
    "Field::new(",
    "f.string(",
    "f.str(",
    "f.int(",
    "f.bool(",
    "f.flag(",
    "f.duration(",
    "f.list(",
    "f.map(",
    "f.str_map(",
    "f.value(",
    "f.is_set(",
];

/// Fails when a module declares or reads a field by name.
fn assert_typed_only(modules: &[(PathBuf, String)]) {
    for (path, text) in modules {
        for pat in BY_NAME {
            assert!(
                !text.contains(pat),
                "{} reads a field by name ({pat})",
                path.display()
            );
        }
    }
}

/// `sys/` declares and reads its fields through typed inputs (`tresor_sdk::input!`), never
/// by name: no `Field::new` and no by-name accessor in the modules that make up its table.
#[test]
fn sys_reads_typed_inputs_only() {
    let sys = core_modules(|f| f.starts_with("system") || f.starts_with("snapshot"));
    assert!(sys.len() >= 10, "found only {} modules", sys.len());
    assert_typed_only(&sys);
    assert!(
        sys.iter()
            .filter(|(_, t)| t.contains("tresor_sdk::input!"))
            .count()
            >= 8,
        "sys/ modules declare their inputs with tresor_sdk::input!"
    );
}

/// Every engine and auth method and the built-ins (`identity/`, `cubbyhole/`, `auth/token/`)
/// declare and read their fields through typed inputs only, as `sys/` does.
#[test]
fn engines_and_built_ins_read_typed_inputs_only() {
    let engines = [
        "tresor-totp",
        "tresor-ssh",
        "tresor-database",
        "tresor-ldap",
        "tresor-jwt",
        "tresor-transit",
        "tresor-approle",
        "tresor-userpass",
        "tresor-cert",
        "tresor-kv",
        "tresor-pki",
    ];
    for name in engines {
        let src = crate_src(name);
        assert_typed_only(&src);
        assert!(
            src.iter().any(|(_, t)| t.contains("tresor_sdk::input!")),
            "{name} declares its inputs with tresor_sdk::input!"
        );
    }
    let built_ins = core_modules(|f| {
        f.starts_with("identity_") || f == "cubbyhole.rs" || f == "token_backend.rs"
    });
    assert!(
        built_ins.len() >= 5,
        "found only {} modules",
        built_ins.len()
    );
    assert_typed_only(&built_ins);
    // The `token_*` fields every auth method shares are a typed input too.
    let token_fields: Vec<_> = crate_src("tresor-sdk")
        .into_iter()
        .filter(|(p, _)| p.ends_with("token.rs"))
        .collect();
    assert_eq!(token_fields.len(), 1, "tresor-sdk/src/token.rs");
    assert_typed_only(&token_fields);
}
