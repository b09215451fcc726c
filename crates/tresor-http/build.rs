//! Embeds the web UI (`ui/`, docs/ui.md): each file is compiled into the binary twice, as is
//! and gzipped here at build time, with an ETag from its content. A dozen small files need no
//! more than this; rust-embed would add a proc macro and directory walker and still leave the
//! gzip step to us.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=ui");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("read ui/")
        .map(|e| e.expect("ui/ entry"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().into_string().expect("UTF-8 file name"))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut table = String::from(
        "/// The UI's files, sorted by name.\npub(crate) static ASSETS: &[Asset] = &[\n",
    );
    for name in &names {
        println!("cargo:rerun-if-changed=ui/{name}");
        let raw = std::fs::read(dir.join(name)).expect("read ui file");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let gz_path = out.join(format!("{name}.gz"));
        std::fs::write(&gz_path, &gz).expect("write gz");
        // FNV-1a: an ETag needs to change with the content, not to resist forgery.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in &raw {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        let _ = writeln!(
            table,
            "    Asset {{ name: {name:?}, raw: include_bytes!({raw:?}), gz: include_bytes!({gzp:?}), etag: \"\\\"{h:016x}\\\"\" }},",
            raw = dir.join(name).display().to_string(),
            gzp = gz_path.display().to_string(),
        );
    }
    table.push_str("];\n");
    std::fs::write(out.join("ui_assets.rs"), table).expect("write ui_assets.rs");
}
