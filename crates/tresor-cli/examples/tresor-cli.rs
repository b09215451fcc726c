//! The CLI alone, for trying it against a server before it is wired into the `tresor`
//! binary: `cargo run -p tresor-cli --example tresor-cli -- status`.

fn main() {
    std::process::exit(tresor_cli::run(std::env::args().skip(1).collect()));
}
