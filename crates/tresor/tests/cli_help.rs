//! End to end, issue 12: the `tresor` binary's help lists every command, its own `server` and
//! `bench` included, and `tresor help CMD` works for those too; an HTTPS request to a
//! plain-HTTP server says what is wrong instead of printing a TLS record error.

mod common;

use common::{Server, clean_command, free_port, run};

fn tresor(args: &[&str]) -> common::Out {
    let home = tempfile::tempdir().unwrap();
    run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .args(args)
        .env("HOME", home.path()))
}

#[test]
fn help_lists_every_command_and_help_cmd_works_for_server_and_bench() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let o = tresor(args).expect(0, "help");
        for name in [
            "server",
            "bench",
            "status",
            "operator",
            "kv",
            "secrets",
            "policy",
            "token",
            "pki",
            "lease",
            "audit",
            "auth",
            "version",
            "path-help",
        ] {
            assert!(
                o.stdout
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{name} "))),
                "{args:?}: {name} is not listed\n{o}"
            );
        }
        assert!(!o.stdout.contains("agent"), "no agent yet\n{o}");
    }
    let o = tresor(&["help", "server"]).expect(0, "help server");
    assert!(o.stdout.starts_with("Usage: tresor server"), "{o}");
    assert!(o.stdout.contains("-dev-tls"), "{o}");
    let o = tresor(&["help", "bench"]).expect(0, "help bench");
    assert!(o.stdout.starts_with("Usage: tresor bench"), "{o}");
    let o = tresor(&["help", "kv", "put"]).expect(0, "help kv put");
    assert!(o.stdout.starts_with("Usage: tresor kv put"), "{o}");
}

#[test]
fn https_to_a_plain_http_server_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _s = Server::start_dev(tmp.path(), port);
    let o = run(clean_command(env!("CARGO_BIN_EXE_tresor"))
        .arg("status")
        .env("HOME", tmp.path())
        .env("VAULT_ADDR", format!("https://127.0.0.1:{port}")));
    assert_eq!(
        o.code, 1,
        "an error checking the seal status, as in Vault\n{o}"
    );
    assert!(
        o.stderr
            .contains("server gave HTTP response to HTTPS client"),
        "{o}"
    );
    assert!(
        o.stderr
            .contains(&format!("is VAULT_ADDR http://127.0.0.1:{port}?")),
        "{o}"
    );
    assert!(!o.stderr.contains("InvalidContentType"), "{o}");
}
