//! The `exec` block: one child process whose environment holds the rendered
//! `env_template`s. It starts after the first complete rendering, is stopped with
//! `restart_stop_signal` and started again when the environment changes (unless
//! `restart_on_secret_changes = "never"`), and when it exits on its own the agent exits with
//! its code, as Vault's agent does.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::config::{Exec, RestartOn};

/// Sends `signal` to the child by its PID, with the system's `kill` program (no unsafe code).
async fn signal(child: &Child, signal: &str) {
    let Some(pid) = child.id() else { return };
    let name = signal.trim_start_matches("SIG");
    let _ = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .await;
}

/// Stops the child: the stop signal, then SIGKILL after 30 seconds.
async fn stop(child: &mut Child, sig: &str) {
    signal(child, sig).await;
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

fn start(cfg: &Exec, env: &BTreeMap<String, String>) -> Result<Child, String> {
    let (prog, args) = cfg.command.split_first().ok_or("exec: empty command")?;
    Command::new(prog)
        .args(args)
        .envs(env)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("exec: cannot start {prog:?}: {e}"))
}

/// Supervises the child; returns its exit code when it exits on its own.
pub async fn run(
    cfg: Exec,
    mut env_rx: watch::Receiver<Option<BTreeMap<String, String>>>,
) -> Result<i32, String> {
    let mut env = match env_rx.wait_for(Option::is_some).await {
        Ok(e) => e.clone().unwrap_or_default(),
        Err(_) => return Ok(0),
    };
    loop {
        let mut child = start(&cfg, &env)?;
        tracing::info!(pid = child.id(), "exec: child started");
        loop {
            tokio::select! {
                st = child.wait() => {
                    let st = st.map_err(|e| format!("exec: {e}"))?;
                    tracing::info!(status = %st, "exec: child exited");
                    return Ok(st.code().unwrap_or(1));
                }
                changed = env_rx.changed() => {
                    if changed.is_err() {
                        // The renderer stopped: keep the child as it is.
                        let st = child.wait().await.map_err(|e| format!("exec: {e}"))?;
                        return Ok(st.code().unwrap_or(1));
                    }
                    let new = env_rx.borrow_and_update().clone().unwrap_or_default();
                    if new == env {
                        continue;
                    }
                    env = new;
                    if cfg.restart_on_secret_changes == RestartOn::Always {
                        tracing::info!("exec: environment changed, restarting the child");
                        stop(&mut child, &cfg.restart_stop_signal).await;
                        break;
                    }
                }
            }
        }
    }
}
