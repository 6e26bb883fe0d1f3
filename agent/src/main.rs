//! The `authstat` binary. The agent itself is not built yet; see the README for its plan.

fn main() {
    eprintln!(
        "authstat {}: the agent is not built yet (only the authstat-core library is)",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(1);
}
