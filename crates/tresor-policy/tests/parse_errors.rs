//! Policy parse errors: each must be a typed variant whose message names the key, the path and
//! (for HCL) the line at fault, so a 400 response tells the author what to fix.

use tresor_policy::{ErrorLocation, PolicyError, parse_policy};

fn err(text: &str) -> PolicyError {
    match parse_policy("p", text) {
        Ok(policy) => panic!("expected an error for {text:?}, got {policy:?}"),
        Err(e) => e,
    }
}

fn loc(path: Option<&str>, line: Option<usize>) -> ErrorLocation {
    ErrorLocation {
        path: path.map(str::to_owned),
        line,
    }
}

#[test]
fn empty_policy() {
    assert_eq!(err(""), PolicyError::Empty);
    assert_eq!(err("  \n\t\n"), PolicyError::Empty);
    assert_eq!(err("").to_string(), "policy is empty");
}

#[test]
fn hcl_syntax_error_names_line_and_column() {
    let e = err("path \"secret/*\" {\n  capabilities = [\"read\"\n}\n");
    let PolicyError::Syntax {
        line,
        column,
        message,
    } = &e
    else {
        panic!("expected a syntax error, got {e:?}");
    };
    assert_eq!((*line, *column), (3, 1));
    assert!(message.contains(']'), "{message}");
    assert!(e.to_string().contains("on line 3, column 1"), "{e}");
}

#[test]
fn hcl_syntax_error_deep_in_the_file() {
    let text = "path \"a\" {\n  capabilities = [\"read\"]\n}\n\npath \"b\" {\n  capabilities = [\"read\",, ]\n}\n";
    let e = err(text);
    assert!(matches!(e, PolicyError::Syntax { line: 6, .. }), "{e:?}");
}

#[test]
fn json_syntax_error_names_line_and_column() {
    let e = err("{\n  \"path\": {\n    \"a\": {\"capabilities\": [\"read\"],}\n  }\n}");
    let PolicyError::Syntax { line, message, .. } = &e else {
        panic!("expected a syntax error, got {e:?}");
    };
    assert_eq!(*line, 3);
    assert!(message.contains("trailing comma"), "{message}");
}

#[test]
fn unknown_capability_names_capability_path_and_line() {
    let e = err("path \"secret/*\" {\n  capabilities = [\"read\", \"reed\"]\n}\n");
    assert_eq!(
        e,
        PolicyError::InvalidCapability {
            capability: "reed".into(),
            at: loc(Some("secret/*"), Some(2)),
        }
    );
    assert_eq!(
        e.to_string(),
        "invalid capability \"reed\" in path \"secret/*\" on line 2"
    );
    // JSON carries no line numbers past parsing, but still names the path.
    let e = err(r#"{"path": {"secret/*": {"capabilities": ["reed"]}}}"#);
    assert_eq!(
        e.to_string(),
        "invalid capability \"reed\" in path \"secret/*\""
    );
}

#[test]
fn root_is_not_a_grantable_capability() {
    let e = err("path \"a\" {\n  capabilities = [\"root\"]\n}\n");
    assert!(
        matches!(e, PolicyError::InvalidCapability { ref capability, .. } if capability == "root")
    );
}

#[test]
fn unknown_key_in_path_block() {
    let e = err(
        "path \"a\" {\n  capabilities = [\"read\"]\n}\n\npath \"b\" {\n  capabilites = [\"read\"]\n}\n",
    );
    assert_eq!(
        e,
        PolicyError::UnknownKey {
            key: "capabilites".into(),
            at: loc(Some("b"), Some(6)),
        }
    );
    assert_eq!(
        e.to_string(),
        "invalid key \"capabilites\" in path \"b\" on line 6"
    );
}

#[test]
fn unknown_top_level_key() {
    let e = err("pth \"a\" {\n  capabilities = []\n}\n");
    assert_eq!(e.to_string(), "invalid key \"pth\" on line 1");
    let e = err(r#"{"paths": {}}"#);
    assert_eq!(e.to_string(), "invalid key \"paths\"");
}

#[test]
fn enterprise_keys_are_rejected_by_name() {
    let e = err(r#"{"path": {"a": {"capabilities": ["read"], "control_group": {}}}}"#);
    assert!(e.to_string().contains("\"control_group\""), "{e}");
}

#[test]
fn invalid_legacy_policy() {
    let e = err("path \"a\" {\n  policy = \"writ\"\n}\n");
    assert!(matches!(e, PolicyError::InvalidLegacyPolicy { ref value, .. } if value == "writ"));
    assert!(e.to_string().contains("in path \"a\" on line 2"), "{e}");
}

#[test]
fn wrong_value_shapes_name_the_field() {
    let e = err("path \"a\" {\n  capabilities = \"read\"\n}\n");
    assert_eq!(
        e.to_string(),
        "invalid value for \"capabilities\" in path \"a\" on line 2: expected a list of strings"
    );
    let e = err("path \"a\" {\n  allowed_parameters = {\n    \"x\" = \"y\"\n  }\n}\n");
    assert!(
        matches!(e, PolicyError::InvalidValue { ref field, .. } if field == "allowed_parameters"),
        "{e:?}"
    );
    assert!(e.to_string().contains("on line 3"), "{e}");
    let e = err("path \"a\" {\n  required_parameters = [1]\n}\n");
    assert!(
        e.to_string()
            .starts_with("invalid value for \"required_parameters\""),
        "{e}"
    );
    let e = err("path \"a\" {\n  allowed_parameters = {\n    \"x\" = [\"${var.y}\"]\n  }\n}\n");
    assert!(
        e.to_string()
            .contains("templates and expressions are not supported"),
        "{e}"
    );
}

#[test]
fn bad_wrapping_ttls() {
    let e = err("path \"a\" {\n  capabilities = [\"read\"]\n  min_wrapping_ttl = \"1y\"\n}\n");
    match e {
        PolicyError::InvalidDuration { field, reason, at } => {
            assert_eq!(field, "min_wrapping_ttl");
            assert!(reason.contains("unknown unit \"y\""), "{reason}");
            assert_eq!(at, loc(Some("a"), Some(3)));
        }
        other => panic!("expected InvalidDuration, got {other:?}"),
    }
    let e = err("path \"a\" {\n  max_wrapping_ttl = true\n}\n");
    assert!(
        e.to_string()
            .starts_with("invalid value for \"max_wrapping_ttl\""),
        "{e}"
    );
    let e = err("path \"a\" {\n  min_wrapping_ttl = \"1h\"\n  max_wrapping_ttl = \"1m\"\n}\n");
    assert_eq!(
        e,
        PolicyError::WrappingTtlOrder {
            at: loc(Some("a"), Some(2)),
        }
    );
}

#[test]
fn malformed_path_blocks() {
    for text in [
        "path {\n  capabilities = []\n}\n",
        "path \"a\" \"b\" {\n  capabilities = []\n}\n",
    ] {
        let e = err(text);
        assert!(
            matches!(
                e,
                PolicyError::InvalidPathBlock {
                    at: ErrorLocation { line: Some(1), .. },
                    ..
                }
            ),
            "{e:?}"
        );
    }
    let e = err("path \"\" {\n  capabilities = [\"read\"]\n}\n");
    assert!(e.to_string().contains("the path pattern is empty"), "{e}");
    let e = err(r#"{"path": "secret/*"}"#);
    assert!(
        e.to_string().starts_with("invalid value for \"path\""),
        "{e}"
    );
}

#[test]
fn duplicate_keys() {
    // HCL rejects a repeated attribute itself, with its position.
    let e = err("path \"a\" {\n  capabilities = [\"read\"]\n  capabilities = [\"list\"]\n}\n");
    assert!(matches!(e, PolicyError::Syntax { line: 3, .. }), "{e:?}");
    // A JSON list of rule objects can repeat a key; that is ours to reject.
    let e = err(r#"{"path": {"a": [{"capabilities": ["read"]}, {"capabilities": ["list"]}]}}"#);
    assert_eq!(
        e.to_string(),
        "duplicate key \"capabilities\" in path \"a\""
    );
}

#[test]
fn brace_text_that_is_not_json_reports_the_json_error() {
    // Starts with `{` but is not JSON; HCL cannot read it either, so the JSON parser's
    // complaint, with its position, is what the author sees.
    let e = err("{ path = 1 }");
    assert!(matches!(e, PolicyError::Syntax { line: 1, .. }), "{e:?}");
}

/// Issue 12: a 1 KiB policy of unclosed braces, found by the `policy` fuzz target, kept the HCL
/// parser backtracking for minutes: nesting past `hcl1::MAX_PARSE_NESTING` is a syntax error
/// before the parser runs.
#[test]
fn deep_nesting_is_refused_before_the_parser_backtracks() {
    let found = include_str!("fixtures/fuzz_slow_policy.txt");
    let started = std::time::Instant::now();
    match err(found) {
        PolicyError::Syntax { line, message, .. } => {
            assert_eq!(line, 1);
            assert!(message.contains("nested more than"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // The second find, when 16 levels were allowed: 341 bytes exactly 16 deep that kept the
    // parser busy for seconds (39 s under the fuzzer). Eight levels are refused before parsing.
    match err(include_str!("fixtures/fuzz_slow_nesting_16.txt")) {
        PolicyError::Syntax { message, .. } => {
            assert!(message.contains("nested more than 8 levels"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // What Vault's policies look like still parses.
    parse_policy(
        "ok",
        r#"path "secret/data/{{identity.entity.name}}/*" {
  capabilities = ["read", "update"]
  allowed_parameters = { "ttl" = ["5m", "1h"] "common_name" = [] }
  denied_parameters = { "x" = [] }
}"#,
    )
    .expect("a usual policy parses");
}
