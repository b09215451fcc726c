//! Durations (`tresor_sdk::duration::parse`, `from_json`, `format_go`) and the path table's
//! typed field parsing (`tresor_sdk::framework`: every `Kind`, captures, defaults, unknown
//! keys), driven through `Table::handle` as an engine's requests are.
//!
//! Input: any text. It is parsed as a duration; if it is JSON, the value goes through
//! `from_json` and into every field of a path that declares one field per kind (an object is
//! the request data itself).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::{Map, Value};
use tresor_sdk::duration::{MAX_SECS, format_go, from_json, parse};
use tresor_sdk::framework::{BoxFuture, Field, Fields, Kind, Path, Table};
use tresor_sdk::{Operation, Request, Response, Result, SpecialPaths};

struct B;

const KINDS: [(&str, Kind); 8] = [
    ("s", Kind::Str),
    ("i", Kind::Int),
    ("b", Kind::Bool),
    ("d", Kind::Duration),
    ("l", Kind::List),
    ("m", Kind::Map),
    ("sm", Kind::StrMap),
    ("r", Kind::Raw),
];

fn read_all(_: Arc<B>, _: Request, f: Fields) -> BoxFuture<Result<Option<Response>>> {
    Box::pin(async move {
        let _ = (f.str("s"), f.int("i"), f.bool("b"), f.duration("d"));
        let _ = (f.list("l"), f.map("m"), f.str_map("sm"), f.value("r"));
        let _ = f.string("name");
        Ok(None)
    })
}

static TABLE: LazyLock<Table<B>> = LazyLock::new(|| {
    let mut p = Path::new("f/{name}/{rest:*}");
    for (name, kind) in KINDS {
        p = p.field(Field::new(name, kind, "fuzzed"));
    }
    p = p.field(Field::new("name", Kind::Str, "capture"));
    Table {
        paths: vec![
            p.op(Operation::Update, read_all)
                .op(Operation::List, read_all),
        ],
        special: SpecialPaths::default(),
        help: "fuzz",
    }
});

/// The `fields_duration` target: one input.
pub fn fields_duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse(text) {
        assert!(d.as_secs() <= MAX_SECS, "{text:?} parsed past the limit");
        // Go's spelling of a whole number of seconds reads back as itself.
        let whole = Duration::from_secs(d.as_secs());
        assert_eq!(parse(&format_go(whole)), Ok(whole), "{text:?}");
    }
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let _ = from_json(&v);
    let data: Map<String, Value> = match &v {
        Value::Object(m) => m.clone(),
        other => KINDS
            .iter()
            .map(|(k, _)| ((*k).to_owned(), other.clone()))
            .collect(),
    };
    let path = match v.get("path").and_then(Value::as_str) {
        Some(p) => format!("f/{p}"),
        None => "f/x/y".into(),
    };
    let req = Request {
        operation: Operation::Update,
        path: path.clone(),
        data,
        storage: Arc::new(crate::MemStorage::default()),
        mount: crate::request(
            Arc::new(crate::MemStorage::default()),
            Operation::Read,
            "",
            Map::new(),
            None,
        )
        .mount,
        caller: Default::default(),
        secret: None,
        connection: Default::default(),
        headers: Vec::new(),
        raw_body: None,
        deadline: None,
    };
    let _ = crate::RT.block_on(TABLE.handle(Arc::new(B), req));
    let _ = TABLE.canonical_path(&path);
    let _ = TABLE.help(&path);
}
