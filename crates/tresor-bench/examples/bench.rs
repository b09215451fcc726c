//! Runs `tresor bench` on its own, for use before the `tresor` binary dispatches to it:
//! `cargo run --release -p tresor-bench --example bench -- -workload=sys-health`.

fn main() {
    std::process::exit(tresor_bench::run(std::env::args().skip(1).collect()));
}
