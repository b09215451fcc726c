//! The template engine against consul-template's behaviour for the functions agents use.

use super::*;
use serde_json::json;

struct Fake {
    reads: Vec<String>,
}

impl Source for Fake {
    fn secret(&mut self, path: &str, args: &[String]) -> Result<Value, String> {
        self.reads.push(path.to_string());
        match path {
            "secret/data/app" => Ok(json!({
                "LeaseID": "", "LeaseDuration": 0, "Renewable": false,
                "Data": {"data": {"user": "admin", "pw": "s3cr3t", "b64": "aGVsbG8=", "n": 3},
                         "metadata": {"version": 2}}
            })),
            "kv1/list" => Ok(json!({"Data": {"b": "2", "a": "1"}})),
            "auth/token/create" => Ok(json!({"Data": null, "args": args})),
            _ => Err(format!("{path}: no secret exists at this path")),
        }
    }
    fn pki_cert(&mut self, _path: &str, args: &[String]) -> Result<Value, String> {
        Ok(
            json!({"Data": {"Cert": "CERT", "Key": "KEY", "CA": "CA", "CAChain": ["CA"]},
                  "args": args}),
        )
    }
}

fn render(src: &str) -> Result<String, String> {
    render_strict(src, false)
}

fn render_strict(src: &str, strict: bool) -> Result<String, String> {
    let t = Template::parse(src, "{{", "}}")?;
    t.render(&mut Fake { reads: vec![] }, strict)
}

#[test]
fn the_common_forms() {
    let cases: &[(&str, &str)] = &[
        (
            "{{ with secret \"secret/data/app\" }}{{ .Data.data.user }}:{{ .Data.data.pw }}{{ end }}",
            "admin:s3cr3t",
        ),
        (
            "{{- with secret \"secret/data/app\" -}}\n  user={{ .Data.data.user }}\n{{- end }}\n",
            "user=admin\n",
        ),
        (
            "{{ range $k, $v := (secret \"kv1/list\").Data }}{{ $k }}={{ $v }};{{ end }}",
            "a=1;b=2;",
        ),
        (
            "{{ (secret \"secret/data/app\").Data.data.b64 | base64Decode }}",
            "hello",
        ),
        (
            "{{ with secret \"secret/data/app\" }}{{ .Data.data | toJSON }}{{ end }}",
            r#"{"b64":"aGVsbG8=","n":3,"pw":"s3cr3t","user":"admin"}"#,
        ),
        (
            "{{ with pkiCert \"pki/issue/r\" \"common_name=x\" }}{{ .Data.Cert }}{{ .Data.Key }}{{ end }}",
            "CERTKEY",
        ),
        (
            "{{ if eq 1 2 }}a{{ else if eq 2 2 }}b{{ else }}c{{ end }}",
            "b",
        ),
        (
            "{{ with secret \"secret/data/app\" }}{{ .Data.data.missing }}{{ end }}",
            "<no value>",
        ),
        ("{{ $x := \"v\" }}{{ $x }}{{/* a comment */}}", "v"),
        ("{{ with \"\" }}yes{{ else }}no{{ end }}", "no"),
        (
            "{{ range (secret \"kv1/list\").Data }}[{{ . }}]{{ end }}",
            "[1][2]",
        ),
        ("{{ printf \"%s-%d\" \"a\" 7 }}", "a-7"),
        (
            "{{ (secret \"secret/data/app\").Data.metadata }}",
            "map[version:2]",
        ),
        ("{{ \"a,b\" | split \",\" | join \"+\" }}", "a+b"),
        ("{{ index (secret \"kv1/list\").Data \"a\" }}", "1"),
    ];
    for (src, want) in cases {
        assert_eq!(render(src).as_deref(), Ok(*want), "{src}");
    }
}

#[test]
fn env_and_file() {
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(render("{{ env \"HOME\" }}").unwrap(), home);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, "content").unwrap();
    assert_eq!(
        render(&format!("{{{{ file \"{}\" }}}}", p.display())).unwrap(),
        "content"
    );
}

#[test]
fn errors_are_errors() {
    for (src, want) in [
        ("{{ with secret \"nope\" }}x{{ end }}", "no secret exists"),
        (
            "{{ with secret \"secret/data/app\" }}{{ .Data.nothing.x }}{{ end }}",
            "nil pointer",
        ),
        ("{{ nofunc 1 }}", "not defined"),
        ("{{ if 1 }}x", "missing {{end}}"),
        ("{{ end }}", "unexpected {{end}}"),
        ("{{ \"unterminated }}", "unterminated"),
        ("{{ x", "unclosed action"),
    ] {
        let got = render(src).unwrap_err();
        assert!(got.contains(want), "{src}: {got}");
    }
    let got = render_strict(
        "{{ with secret \"secret/data/app\" }}{{ .Data.data.missing }}{{ end }}",
        true,
    )
    .unwrap_err();
    assert!(
        got.contains("map has no entry for key \"missing\""),
        "{got}"
    );
}

#[test]
fn an_error_never_quotes_a_secret() {
    let got =
        render("{{ with secret \"secret/data/app\" }}{{ .Data.data.pw.x }}{{ end }}").unwrap_err();
    assert!(!got.contains("s3cr3t"), "{got}");
}

#[test]
fn custom_delimiters() {
    let t = Template::parse("<< .A >>{{ kept }}", "<<", ">>").unwrap();
    let mut f = Fake { reads: vec![] };
    // `.A` of the empty dot is a nil-pointer error in Go; use a literal instead.
    assert!(t.render(&mut f, false).is_err());
    let t = Template::parse("<< \"x\" >>{{ kept }}", "<<", ">>").unwrap();
    assert_eq!(t.render(&mut f, false).unwrap(), "x{{ kept }}");
}

/// Found by fuzzing (the `agent_template` target, issue 12): `range` over a huge integer asked
/// for a petabyte allocation and aborted the process; nested ranges multiplied. Both are
/// refused once a render passes a million iterations, and small ranges still work.
#[test]
fn range_iterations_are_bounded() {
    let t = std::time::Instant::now();
    let e = render("{{- range 388888888888888}}x{{ end }}").unwrap_err();
    assert!(e.contains("iterations"), "{e}");
    let e = render("{{ range 2000 }}{{ range 2000 }}{{ end }}{{ end }}").unwrap_err();
    assert!(e.contains("iterations"), "{e}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        render("{{ range $i, $v := 3 }}{{ $i }}{{ end }}").unwrap(),
        "012"
    );
}
