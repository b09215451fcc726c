//! Pure JSON transformations the v2 engine needs: RFC 7396 merge patch (data and metadata
//! `PATCH`) and the `subkeys` view of a secret (its shape with every leaf replaced by `null`).

use serde_json::{Map, Value};

/// Applies `patch` to `target` as an RFC 7396 JSON merge patch: objects merge recursively,
/// a `null` member removes the key, any other value replaces the target wholesale.
pub(crate) fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(obj) = target else { return };
    for (key, value) in members {
        if value.is_null() {
            obj.remove(key);
        } else {
            merge_patch(obj.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// The keys of `data` with leaf values replaced by `null`. A leaf is any non-object value or an
/// empty object. `depth` 0 means no limit; otherwise keys at that nesting level (top level is
/// 1) are shown as leaves even when they hold further keys.
pub(crate) fn subkeys(data: &Map<String, Value>, depth: u64) -> Value {
    fn walk(data: &Map<String, Value>, depth: u64, level: u64) -> Value {
        let out = data
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::Object(inner) if !inner.is_empty() && (depth == 0 || level < depth) => {
                        walk(inner, depth, level + 1)
                    }
                    _ => Value::Null,
                };
                (k.clone(), shown)
            })
            .collect();
        Value::Object(out)
    }
    walk(data, depth, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396_examples() {
        // The test vectors of RFC 7396 appendix A.
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            let mut got = target.clone();
            merge_patch(&mut got, &patch);
            assert_eq!(got, want, "target {target} patch {patch}");
        }
    }

    #[test]
    fn subkeys_replaces_leaves_and_honours_depth() {
        let data = json!({"foo": "abc", "bar": {"baz": "def", "deep": {"x": 1}}, "quux": {}, "list": [1, 2]});
        let data = data.as_object().unwrap();
        assert_eq!(
            subkeys(data, 0),
            json!({"foo": null, "bar": {"baz": null, "deep": {"x": null}}, "quux": null, "list": null})
        );
        assert_eq!(
            subkeys(data, 1),
            json!({"foo": null, "bar": null, "quux": null, "list": null})
        );
        assert_eq!(
            subkeys(data, 2),
            json!({"foo": null, "bar": {"baz": null, "deep": null}, "quux": null, "list": null})
        );
    }
}
