//! End to end, issue 12: the server's log. `log_format = "json"` (config), `-log-format=json`
//! and `VAULT_LOG_FORMAT=json` make every stderr line a JSON object with Vault's keys; the
//! level comes from `-log-level`, `VAULT_LOG_LEVEL` or `log_level`, in that order; standard
//! logs carry no colour codes when stderr is not a terminal.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{READY_TIMEOUT, clean_command, free_port, plain_config};
use serde_json::Value;

/// A server started with its stderr in a file (not a terminal); killed by PID when dropped.
struct Proc {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Starts `tresor server -config=config.hcl ARGS` in `dir` and waits (boundedly) until the
/// start-up banner is on stderr (the last thing a start writes).
fn start(dir: &Path, config: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
    std::fs::write(dir.join("config.hcl"), config).unwrap();
    let stderr = dir.join("stderr");
    let mut cmd = clean_command(env!("CARGO_BIN_EXE_tresor"));
    cmd.args(["server", "-config=config.hcl"])
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = Proc {
        child: cmd.spawn().expect("start tresor server"),
        stderr,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    while !p.stderr().contains("Log data will stream in below") {
        if let Ok(Some(status)) = p.child.try_wait() {
            panic!("tresor server exited early ({status}):\n{}", p.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "no start-up banner within {READY_TIMEOUT:?}:\n{}",
            p.stderr()
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    p
}

/// Every non-empty line parsed as JSON, failing on the first that is not.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\n--- all:\n{text}"))
        })
        .collect()
}

/// Config lines, flags, and variables for one start.
type Way = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// A harmless ignored key, so that start-up logs a warning naming it.
const WARN: &str = "plugin_directory = \"/usr/lib/vault/plugins\"";

#[test]
fn json_logs_from_config_flag_and_variable() {
    let ways: [Way; 3] = [
        ("log_format = \"json\"", &[], &[]),
        ("", &["-log-format=json"], &[]),
        ("", &[], &[("VAULT_LOG_FORMAT", "json")]),
    ];
    for (extra, args, env) in ways {
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = start(
            tmp.path(),
            &plain_config(port, &format!("{WARN}\n{extra}")),
            args,
            env,
        );
        let text = p.stderr();
        let lines = json_lines(&text);
        for l in &lines {
            for key in ["@level", "@message", "@timestamp"] {
                assert!(
                    l[key].is_string(),
                    "{key} missing in {l} ({extra} {args:?} {env:?})"
                );
            }
        }
        let warning = lines
            .iter()
            .find(|l| {
                l["@message"]
                    .as_str()
                    .is_some_and(|m| m.contains("plugin_directory"))
            })
            .unwrap_or_else(|| panic!("no warning naming plugin_directory:\n{text}"));
        assert_eq!(warning["@level"], "warn", "{warning}");
        assert!(
            lines.iter().any(|l| l["@message"]
                .as_str()
                .is_some_and(|m| m.contains("Tresor server started"))),
            "the banner is a JSON line too:\n{text}"
        );
    }
}

/// An error that stops a started server (here: its port is taken) is a JSON line too.
#[test]
fn a_fatal_error_is_a_json_line_in_the_json_format() {
    let tmp = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::fs::write(
        tmp.path().join("config.hcl"),
        plain_config(port, "log_format = \"json\""),
    )
    .unwrap();
    let o = common::run_for(
        clean_command(env!("CARGO_BIN_EXE_tresor"))
            .args(["server", "-config=config.hcl"])
            .current_dir(tmp.path())
            .env("HOME", tmp.path())
            .env_remove("RUST_LOG"),
        None,
        Duration::from_secs(20),
    );
    assert_eq!(o.code, 1, "{o}");
    let lines = json_lines(&o.stderr);
    let last = lines.last().expect("an error line");
    assert_eq!(last["@level"], "error", "{o}");
    assert!(
        last["@message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Error: ")),
        "{o}"
    );
}

#[test]
fn standard_logs_have_no_colour_off_a_terminal_and_levels_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let p = start(tmp.path(), &plain_config(port, WARN), &[], &[]);
    let text = p.stderr();
    assert!(text.contains("plugin_directory"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log that is not a terminal:\n{text:?}"
    );
    drop(p);

    // error hides the warning: from the config, the variable and the flag; the flag wins over
    // the variable, which wins over the config.
    let cases: [(Way, bool); 4] = [
        (("log_level = \"error\"", &[], &[]), false),
        (("", &[], &[("VAULT_LOG_LEVEL", "err")]), false),
        (("log_level = \"error\"", &["-log-level=warn"], &[]), true),
        (
            ("log_level = \"warn\"", &[], &[("VAULT_LOG_LEVEL", "error")]),
            false,
        ),
    ];
    for ((extra, args, env), shown) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let port = free_port();
        let p = start(
            tmp.path(),
            &plain_config(port, &format!("{WARN}\n{extra}")),
            args,
            env,
        );
        let text = p.stderr();
        assert_eq!(
            text.contains("plugin_directory"),
            shown,
            "{extra} {args:?} {env:?}:\n{text}"
        );
    }
}
