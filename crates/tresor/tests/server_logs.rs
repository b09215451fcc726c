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

/// Issue 20: `log_file` with rotation. The log also goes to the file (mode 0600), which is
/// renamed `<name>-<unix ns>.log` when it would pass `log_rotate_bytes`, and only the newest
/// `log_rotate_max_files` rotated files are kept. The same from the config and from Vault's
/// flags (`-log-file`, `-log-rotate-bytes`, `-log-rotate-max-files`; a name without an
/// extension gets `.log`, a directory `vault.log`).
#[test]
fn the_log_file_rotates_by_size_keeps_max_files_and_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    for (config, flags, current) in [
        (
            "log_file = \"logs/\"\nlog_rotate_bytes = 200\nlog_rotate_max_files = 2\n",
            &[][..],
            "vault.log",
        ),
        (
            "",
            &[
                "-log-file=logs/tresor",
                "-log-rotate-bytes=200",
                "-log-rotate-max-files=2",
            ][..],
            "tresor.log",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let extra = format!("log_level = \"debug\"\nlog_format = \"json\"\n{config}");
        let p = start(dir.path(), &plain_config(port, &extra), flags, &[]);
        // Log lines: each unseal and seal writes one (about 120 bytes).
        let api = |method: &str, path: &str, body: &str, token: &str| -> Value {
            let o = common::run(clean_command("curl").args([
                "-sS",
                "-X",
                method,
                "-H",
                &format!("X-Vault-Token: {token}"),
                "-d",
                body,
                &format!("http://127.0.0.1:{port}/v1/{path}"),
            ]));
            serde_json::from_str(&o.stdout).unwrap_or(Value::Null)
        };
        let init = api(
            "PUT",
            "sys/init",
            r#"{"secret_shares":1,"secret_threshold":1}"#,
            "",
        );
        let key = init["keys_base64"][0].as_str().unwrap().to_owned();
        let root = init["root_token"].as_str().unwrap().to_owned();
        for _ in 0..4 {
            let v = api("PUT", "sys/unseal", &format!(r#"{{"key":"{key}"}}"#), "");
            assert_eq!(v["sealed"], false, "{v}");
            api("PUT", "sys/seal", "", &root);
        }
        let logs = dir.path().join("logs");
        let stem = current.trim_end_matches(".log");
        let mut rotated = Vec::new();
        let mut current_text = String::new();
        for e in std::fs::read_dir(&logs).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
            let text = std::fs::read_to_string(e.path()).unwrap();
            if name == current {
                current_text = text;
            } else {
                let ns = name
                    .strip_prefix(&format!("{stem}-"))
                    .and_then(|n| n.strip_suffix(".log"))
                    .unwrap_or_else(|| panic!("unexpected file {name}"));
                assert!(ns.parse::<u128>().is_ok(), "{name}");
                assert!(
                    text.len() <= 200 || text.lines().count() == 1,
                    "{name}: {text}"
                );
                rotated.push(text);
            }
        }
        assert_eq!(
            rotated.len(),
            2,
            "rotated files kept ({config}{flags:?}); current file:\n{current_text}"
        );
        // Every line written to the files is a line of the log (JSON, as configured).
        let told: Vec<String> = json_lines(&p.stderr())
            .iter()
            .filter_map(|l| l["@message"].as_str().map(str::to_owned))
            .collect();
        let mut lines = 0;
        for text in rotated.iter().chain([&current_text]) {
            for l in json_lines(text) {
                let m = l["@message"].as_str().unwrap().to_owned();
                assert!(told.contains(&m), "{m:?} is not in the log");
                lines += 1;
            }
        }
        assert!(lines >= 3, "{lines} lines in the files");
    }
}
