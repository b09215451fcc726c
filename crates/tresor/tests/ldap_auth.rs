//! Issue 14, LDAP: a real OpenLDAP slapd on 127.0.0.1 (users in `ou=users`, one group with
//! `member`, one seen through the `memberOf` overlay), and `bao login -method=ldap` against
//! Tresor: group policies, a wrong password refused, failover past a dead first URL,
//! StartTLS and ldaps with the server's CA, LDAP groups as identity group aliases, and bad
//! configuration refused with nothing stored.

mod common;

use common::ldap::{BASE, start_slapd};
use common::{Server, free_port, run};
use serde_json::{Value, json};

fn ok(s: &Server, args: &[&str]) -> String {
    let o = s.bao_as("root", args);
    assert_eq!(o.code, 0, "bao {args:?}: {o}");
    o.stdout
}

fn login(s: &Server, user: &str, pw: &str) -> (u16, Value) {
    s.api(
        "POST",
        &format!("auth/ldap/login/{user}"),
        Some(&json!({ "password": pw }).to_string()),
        None,
    )
}

fn policies(v: &Value) -> Vec<String> {
    common::strings(&v["auth"]["policies"])
}

#[test]
fn ldap_logins_against_a_real_slapd() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = start_slapd(&tmp.path().join("ldap"));
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "ldap"]);
    // The first URL is dead: the login must still work, after one connection_timeout.
    let dead = free_port();
    ok(
        &s,
        &[
            "write",
            "auth/ldap/config",
            &format!(
                "url=ldap://127.0.0.1:{dead},ldap://127.0.0.1:{}",
                slapd.port
            ),
            &format!("userdn=ou=users,{BASE}"),
            "userattr=uid",
            &format!("groupdn=ou=groups,{BASE}"),
            "groupfilter=(member={{.UserDN}})",
            "groupattr=cn",
            &format!("binddn=cn=admin,{BASE}"),
            "bindpass=adminpw",
            "connection_timeout=2s",
        ],
    );
    let cfg = ok(&s, &["read", "-format=json", "auth/ldap/config"]);
    assert!(
        !cfg.contains("adminpw"),
        "the bind password is never shown: {cfg}"
    );
    ok(&s, &["write", "auth/ldap/groups/devs", "policies=devpol"]);
    ok(&s, &["write", "auth/ldap/groups/ops", "policies=opspol"]);

    // `tresor login -method=ldap` (the bao wheel's CLI has no ldap login helper, so bao
    // logs in with `bao write auth/ldap/login/:user`): alice gets her group's policy.
    let o = run(common::clean_command(env!("CARGO_BIN_EXE_tresor"))
        .args([
            "login",
            "-method=ldap",
            "-format=json",
            "username=alice",
            "password=alicepw",
        ])
        .env("VAULT_ADDR", &s.addr)
        .env("HOME", &s.home));
    assert_eq!(o.code, 0, "tresor login: {o}\n{}", s.log());
    let v: Value = serde_json::from_str(&o.stdout).expect("json");
    assert!(policies(&v).contains(&"devpol".to_owned()), "{v}");
    assert!(!policies(&v).contains(&"opspol".to_owned()), "{v}");
    let o = s.bao(&[
        "write",
        "-format=json",
        "auth/ldap/login/alice",
        "password=alicepw",
    ]);
    assert_eq!(o.code, 0, "bao write auth/ldap/login: {o}");
    let v: Value = serde_json::from_str(&o.stdout).expect("json");
    assert!(policies(&v).contains(&"devpol".to_owned()), "{v}");
    // Wrong password and unknown user: one refusal.
    let (code, wrong) = login(&s, "alice", "nope");
    assert_eq!(code, 400, "{wrong}");
    let (code, unknown) = login(&s, "mallory", "nope");
    assert_eq!(code, 400, "{unknown}");
    assert_eq!(wrong["errors"], unknown["errors"]);

    // Active Directory style: groups from memberOf on the user's entry.
    ok(
        &s,
        &[
            "write",
            "auth/ldap/config",
            &format!("groupdn=ou=users,{BASE}"),
            "groupfilter=(&(objectClass=inetOrgPerson)(uid={{.Username}}))",
            "groupattr=memberOf",
        ],
    );
    let (code, v) = login(&s, "bob", "bobpw");
    assert_eq!(code, 200, "{v}");
    assert!(policies(&v).contains(&"opspol".to_owned()), "{v}");

    // LDAP groups are identity group aliases: an external group's policy applies.
    let acc: Value = serde_json::from_str(&ok(&s, &["auth", "list", "-format=json"])).unwrap();
    let acc = acc["ldap/"]["accessor"].as_str().unwrap().to_owned();
    let g: Value = serde_json::from_str(&ok(
        &s,
        &[
            "write",
            "-format=json",
            "identity/group",
            "name=ext-ops",
            "type=external",
            "policies=extpol",
        ],
    ))
    .unwrap();
    ok(
        &s,
        &[
            "write",
            "identity/group-alias",
            "name=ops",
            &format!("mount_accessor={acc}"),
            &format!("canonical_id={}", g["data"]["id"].as_str().unwrap()),
        ],
    );
    let (code, v) = login(&s, "bob", "bobpw");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["auth"]["identity_policies"], json!(["extpol"]), "{v}");

    // StartTLS and ldaps, verified with the server's CA.
    let ca = tmp.path().join("ldap/ca.pem");
    for (url, starttls) in [
        (format!("ldap://127.0.0.1:{}", slapd.port), "true"),
        (format!("ldaps://127.0.0.1:{}", slapd.tls_port), "false"),
    ] {
        ok(
            &s,
            &[
                "write",
                "auth/ldap/config",
                &format!("url={url}"),
                &format!("starttls={starttls}"),
                &format!("certificate=@{}", ca.display()),
                &format!("groupdn=ou=groups,{BASE}"),
                "groupfilter=(member={{.UserDN}})",
                "groupattr=cn",
            ],
        );
        let (code, v) = login(&s, "alice", "alicepw");
        assert_eq!(code, 200, "{url}: {v}\n{}", s.log());
        assert!(policies(&v).contains(&"devpol".to_owned()), "{v}");
    }
    assert!(slapd.cert.contains("BEGIN CERTIFICATE"));

    // Bad configuration: a 400 naming the field, and the stored config unchanged.
    let before = ok(&s, &["read", "-format=json", "auth/ldap/config"]);
    for (args, field) in [
        (vec!["certificate=not a pem"], "certificate"),
        (vec!["url=http://127.0.0.1:1"], "url"),
        (vec!["userfilter=uid=x"], "userfilter"),
    ] {
        let mut a = vec!["write", "auth/ldap/config"];
        a.extend(args.iter().copied());
        let o = s.bao_as("root", &a);
        assert_ne!(o.code, 0, "{args:?} accepted");
        assert!(o.stderr.contains(field), "{args:?}: {o}");
    }
    let after = ok(&s, &["read", "-format=json", "auth/ldap/config"]);
    let strip = |t: &str| {
        let mut v: Value = serde_json::from_str(t).unwrap();
        v["request_id"] = Value::Null;
        v
    };
    assert_eq!(
        strip(&before),
        strip(&after),
        "nothing half-written stays behind"
    );
}

/// Established TCP connections to `port` on 127.0.0.1 (client sides), from /proc/net/tcp.
fn connections_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

/// Logins reuse pooled directory connections, and what a connection was bound as never
/// carries over: a wrong password right after another user's login is refused, and
/// concurrent logins of two users each get their own groups.
#[test]
fn pooled_directory_connections_never_carry_a_bind_over() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = start_slapd(&tmp.path().join("ldap"));
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "ldap"]);
    // No binddn: the user's DN is built from userattr and userdn, groups searched as the user.
    ok(
        &s,
        &[
            "write",
            "auth/ldap/config",
            &format!("url=ldap://127.0.0.1:{}", slapd.port),
            &format!("userdn=ou=users,{BASE}"),
            "userattr=uid",
            &format!("groupdn=ou=groups,{BASE}"),
            "groupfilter=(member={{.UserDN}})",
            "groupattr=cn",
        ],
    );
    pooled_logins_get_their_own_groups(&s, slapd.port, 1);
    // No password reaches the server's log, wrong ones included.
    let log = s.log();
    for pw in ["alicepw", "bobpw"] {
        assert!(!log.contains(pw), "{pw} in the log");
    }
}

/// Sequential and concurrent logins of alice (group devs) and bob (group ops), with wrong
/// passwords among them, on a mount whose groups `devs` and `ops` are not written yet:
/// each login gets exactly its own group's policy. `sequential`: the directory connections
/// open after the sequential logins (the pool reuses them).
fn pooled_logins_get_their_own_groups(s: &Server, port: u16, sequential: usize) {
    ok(s, &["write", "auth/ldap/groups/devs", "policies=devpol"]);
    ok(s, &["write", "auth/ldap/groups/ops", "policies=opspol"]);
    for _ in 0..10 {
        let (code, v) = login(s, "alice", "alicepw");
        assert_eq!(code, 200, "{v}");
        assert!(policies(&v).contains(&"devpol".to_owned()), "{v}");
        // On the connection alice just bound: bob with a wrong password is still refused.
        let (code, v) = login(s, "bob", "alicepw");
        assert_eq!(code, 400, "{v}");
        let (code, v) = login(s, "bob", "bobpw");
        assert_eq!(code, 200, "{v}");
        assert!(policies(&v).contains(&"opspol".to_owned()), "{v}");
        assert!(!policies(&v).contains(&"devpol".to_owned()), "{v}");
    }
    // Thirty logins one after another used one connection of each kind, kept for the next.
    let open = connections_to(port);
    assert_eq!(
        open, sequential,
        "pooled connections after sequential logins"
    );
    // Concurrent logins of both users (and wrong passwords among them).
    let results: Vec<(String, u16, Value)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..24)
            .map(|i| {
                sc.spawn(move || {
                    let (user, pw) = match i % 3 {
                        0 => ("alice", "alicepw"),
                        1 => ("bob", "bobpw"),
                        _ => ("alice", "bobpw"),
                    };
                    let (code, v) = login(s, user, pw);
                    (format!("{user}/{pw}"), code, v)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (who, code, v) in &results {
        let want = match who.as_str() {
            "alice/alicepw" => "devpol",
            "bob/bobpw" => "opspol",
            _ => {
                assert_eq!(*code, 400, "{who}: {v}");
                continue;
            }
        };
        assert_eq!(*code, 200, "{who}: {v}");
        let got: Vec<String> = policies(v)
            .into_iter()
            .filter(|p| p.ends_with("pol"))
            .collect();
        assert_eq!(got, [want], "{who}: {v}");
    }
    let open = connections_to(port);
    assert!((1..=48).contains(&open), "{open} connections kept");
}

/// Directory operations per login without `binddn`, counted by slapd's monitor: a bind as the
/// user, a read of the user's entry (its `userattr` is the alias name) and the group search;
/// with `username_as_alias` the alias is the login name and, as in Vault, the entry is not
/// read.
#[test]
fn username_as_alias_saves_the_user_entry_read() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = start_slapd(&tmp.path().join("ldap"));
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "ldap"]);
    ok(&s, &["write", "auth/ldap/groups/devs", "policies=devpol"]);
    let per_login = |as_alias: bool| {
        ok(
            &s,
            &[
                "write",
                "auth/ldap/config",
                &format!("url=ldap://127.0.0.1:{}", slapd.port),
                &format!("userdn=ou=users,{BASE}"),
                "userattr=uid",
                &format!("groupdn=ou=groups,{BASE}"),
                "groupfilter=(member={{.UserDN}})",
                "groupattr=cn",
                &format!("username_as_alias={as_alias}"),
            ],
        );
        // Alice logs in as "ALICE": names are case-insensitive, so the login name is "alice".
        let (code, v) = login(&s, "ALICE", "alicepw");
        assert_eq!(code, 200, "{v}");
        let (b0, s0) = (slapd.completed("Bind"), slapd.completed("Search"));
        for _ in 0..5 {
            let (code, v) = login(&s, "ALICE", "alicepw");
            assert_eq!(code, 200, "{v}");
            assert!(policies(&v).contains(&"devpol".to_owned()), "{v}");
        }
        let (code, v) = login(&s, "alice", "wrong");
        assert_eq!(code, 400, "{v}");
        let token = v["auth"]["client_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(token.is_empty());
        // The counters' own reads (ldapsearch binds anonymously, then searches) add two
        // binds and two searches between the first reads and the last.
        let binds = slapd.completed("Bind") - b0 - 2;
        let searches = slapd.completed("Search") - s0 - 2;
        (binds, searches)
    };
    assert_eq!(per_login(false), (6, 10), "bind, entry read, group search");
    assert_eq!(per_login(true), (6, 5), "bind and group search only");
    // Without the entry read, the login name alone builds the DN: names that would widen a
    // filter or change the DN's shape bind as nobody.
    for name in [
        "*",
        "alice)(uid=*",
        "alice,ou=users",
        "uid=alice",
        " alice\\",
    ] {
        let (code, v) = login(&s, &name.replace(' ', "%20"), "alicepw");
        assert_eq!(code, 400, "{name}: {v}");
        assert!(v["auth"].is_null(), "{name}: {v}");
    }
    // The alias is the login name.
    let (code, v) = login(&s, "ALICE", "alicepw");
    assert_eq!(code, 200, "{v}");
    let entity = v["auth"]["entity_id"].as_str().unwrap().to_owned();
    let (code, e) = s.api(
        "GET",
        &format!("identity/entity/id/{entity}"),
        None,
        Some("root"),
    );
    assert_eq!(code, 200, "{e}");
    assert_eq!(e["data"]["aliases"][0]["name"], "alice", "{e}");
}

/// With `binddn`, searches run on connections bound once as `binddn` and passwords are tried
/// on others: users still get exactly their own groups, one connection of each kind serves
/// sequential logins, and a new `bindpass` drops the connections bound with the old one (a
/// wrong one fails the next login at once; the right one works again).
#[test]
fn service_connections_search_as_binddn_only() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = start_slapd(&tmp.path().join("ldap"));
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "ldap"]);
    let admin = format!("cn=admin,{BASE}");
    let config = |bindpass: &str| configure_with_binddn(&s, slapd.port, &admin, bindpass);
    config("adminpw");
    pooled_logins_get_their_own_groups(&s, slapd.port, 2);
    // An unknown user is refused like a wrong password.
    let (code, v) = login(&s, "mallory", "alicepw");
    assert_eq!(code, 400, "{v}");
    // A filter-looking user name matches nobody.
    let (code, v) = login(&s, "*", "alicepw");
    assert_eq!(code, 400, "{v}");
    config("wrong-adminpw");
    let (code, v) = login(&s, "alice", "alicepw");
    assert_ne!(code, 200, "{v}");
    assert!(v.to_string().contains("binddn"), "{v}");
    config("adminpw");
    let (code, v) = login(&s, "alice", "alicepw");
    assert_eq!(code, 200, "{v}");
    assert!(policies(&v).contains(&"devpol".to_owned()), "{v}");
    let log = s.log();
    for pw in ["alicepw", "bobpw", "adminpw"] {
        assert!(!log.contains(pw), "{pw} in the log");
    }
}

/// Pooled connections bound as `binddn` do not outlive a change in the directory: once the
/// account's password is changed there, logins fail within the rebind interval (5 s), as they
/// would with a bind per login, and work again once Tresor is given the new password.
#[test]
fn a_binddn_password_changed_in_the_directory_stops_logins() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = start_slapd(&tmp.path().join("ldap"));
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "ldap"]);
    let bob = format!("uid=bob,ou=users,{BASE}");
    let config = |bindpass: &str| configure_with_binddn(&s, slapd.port, &bob, bindpass);
    // bob's entry is the service account.
    config("bobpw");
    ok(&s, &["write", "auth/ldap/groups/devs", "policies=devpol"]);
    for _ in 0..3 {
        let (code, v) = login(&s, "alice", "alicepw");
        assert_eq!(code, 200, "{v}");
        assert!(policies(&v).contains(&"devpol".to_owned()), "{v}");
    }
    // The directory's administrator changes the service account's password.
    let o = run(std::process::Command::new("ldappasswd").args([
        "-x",
        "-H",
        &format!("ldap://127.0.0.1:{}", slapd.port),
        "-D",
        &format!("cn=admin,{BASE}"),
        "-w",
        "adminpw",
        "-s",
        "bob-rotated",
        &bob,
    ]));
    assert_eq!(o.code, 0, "ldappasswd: {o}");
    std::thread::sleep(std::time::Duration::from_secs(6));
    let (code, v) = login(&s, "alice", "alicepw");
    assert_ne!(code, 200, "a login still ran as the old binddn: {v}");
    assert!(v.to_string().contains("binddn"), "{v}");
    config("bob-rotated");
    let (code, v) = login(&s, "alice", "alicepw");
    assert_eq!(code, 200, "{v}");
}

/// Configures `auth/ldap` to find users by a search as `binddn` (users in `ou=users`, groups
/// in `ou=groups` by `member`).
fn configure_with_binddn(s: &Server, port: u16, binddn: &str, bindpass: &str) {
    ok(
        s,
        &[
            "write",
            "auth/ldap/config",
            &format!("url=ldap://127.0.0.1:{port}"),
            &format!("binddn={binddn}"),
            &format!("bindpass={bindpass}"),
            &format!("userdn=ou=users,{BASE}"),
            "userattr=uid",
            &format!("groupdn=ou=groups,{BASE}"),
            "groupfilter=(member={{.UserDN}})",
            "groupattr=cn",
        ],
    );
}

/// A configuration write changes only the settings it sends: the timeouts keep their
/// defaults (90 s, 30 s) or their configured values when a later write leaves them out (an
/// earlier version set them to 0, which ran every operation with a 1 s timeout).
#[test]
fn config_writes_keep_the_settings_they_do_not_send() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "ldap"]);
    let read = |s: &Server| {
        let (code, v) = s.api("GET", "auth/ldap/config", None, Some("root"));
        assert_eq!(code, 200, "{v}");
        v["data"].clone()
    };
    ok(
        &s,
        &[
            "write",
            "auth/ldap/config",
            "url=ldap://127.0.0.1:1",
            &format!("userdn=ou=users,{BASE}"),
        ],
    );
    let d = read(&s);
    assert_eq!(d["request_timeout"], 90, "{d}");
    assert_eq!(d["connection_timeout"], 30, "{d}");
    assert_eq!(d["max_page_size"], 0, "{d}");
    ok(
        &s,
        &[
            "write",
            "auth/ldap/config",
            "connection_timeout=5s",
            "max_page_size=500",
            "starttls=true",
        ],
    );
    ok(&s, &["write", "auth/ldap/config", "groupattr=memberOf"]);
    let d = read(&s);
    assert_eq!(d["connection_timeout"], 5, "{d}");
    assert_eq!(d["request_timeout"], 90, "{d}");
    assert_eq!(d["max_page_size"], 500, "{d}");
    assert_eq!(d["starttls"], true, "{d}");
    assert_eq!(d["groupattr"], "memberOf", "{d}");
    assert_eq!(d["url"], "ldap://127.0.0.1:1", "{d}");
    // A bad value names the field and changes nothing.
    let o = s.bao_as(
        "root",
        &["write", "auth/ldap/config", "request_timeout=soon"],
    );
    assert_ne!(o.code, 0, "{o}");
    assert!(o.stderr.contains("request_timeout"), "{o}");
    assert_eq!(read(&s)["request_timeout"], 90);
}

/// Against the binddn path: filter-injection user names and a 64 KiB name match nobody (a
/// name differing from alice's only in case and spaces is alice, as in Vault), an
/// empty password is not an anonymous bind, concurrent logins racing a bindpass change never
/// log a user in with someone else's groups, and the bind password never appears in an
/// answer, an error or the server log.
#[test]
fn binddn_logins_resist_injection_races_and_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let slapd = start_slapd(&tmp.path().join("ldap"));
    let s = Server::start_dev(tmp.path(), free_port());
    ok(&s, &["auth", "enable", "ldap"]);
    let admin = format!("cn=admin,{BASE}");
    configure_with_binddn(&s, slapd.port, &admin, "adminpw");
    ok(&s, &["write", "auth/ldap/groups/devs", "policies=devpol"]);
    ok(&s, &["write", "auth/ldap/groups/ops", "policies=opspol"]);
    let long = "a".repeat(64 * 1024);
    for user in [
        "alice)(uid=*",
        "*)(|(uid=*",
        "alice*",
        "alice\\2a",
        long.as_str(),
    ] {
        let escaped: String = user
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (code, v) = login(&s, &escaped, "alicepw");
        assert_ne!(code, 200, "{user:.40}: {v}");
        assert!(v["auth"].is_null(), "{user:.40}: {v}");
    }
    let (code, v) = login(&s, "alice", "");
    assert_eq!(code, 400, "{v}");
    // Logins race a bindpass change (to a wrong one and back): each answer is either a
    // refusal or exactly the user's own group.
    std::thread::scope(|sc| {
        let flipper = sc.spawn(|| {
            for pw in ["wrong-Zq9", "adminpw", "wrong-Zq9", "adminpw"] {
                configure_with_binddn(&s, slapd.port, &admin, pw);
            }
        });
        let hs: Vec<_> = (0..16)
            .map(|i| {
                let s = &s;
                sc.spawn(move || {
                    let (user, pw, want) = if i % 2 == 0 {
                        ("alice", "alicepw", "devpol")
                    } else {
                        ("bob", "bobpw", "opspol")
                    };
                    let (code, v) = login(s, user, pw);
                    if code == 200 {
                        let got: Vec<String> = policies(&v)
                            .into_iter()
                            .filter(|p| p.ends_with("pol"))
                            .collect();
                        assert_eq!(got, [want], "{user}: {v}");
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        flipper.join().unwrap();
    });
    let (code, v) = login(&s, "alice", "alicepw");
    assert_eq!(code, 200, "{v}");
    // The bind password shows up nowhere.
    configure_with_binddn(&s, slapd.port, &admin, "Secret-BindPW-7731");
    let (code, v) = login(&s, "alice", "alicepw");
    assert_ne!(code, 200, "{v}");
    assert!(!v.to_string().contains("Secret-BindPW-7731"), "{v}");
    let (_, cfg) = s.api("GET", "auth/ldap/config", None, Some("root"));
    assert!(!cfg.to_string().contains("Secret-BindPW-7731"), "{cfg}");
    assert!(!cfg.to_string().contains("adminpw"), "{cfg}");
    let log = s.log();
    for secret in [
        "Secret-BindPW-7731",
        "adminpw",
        "wrong-Zq9",
        "alicepw",
        "bobpw",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}
