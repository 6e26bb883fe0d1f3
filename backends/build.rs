//! With a backend that links a C client library (libpq, MariaDB's Connector/C): a constructor
//! that keeps OpenSSL from freeing its state at exit while other threads use it (see
//! `src/sql/openssl_no_atexit.c`). Linked whole, so that every binary with these backends runs it.

fn main() {
    println!("cargo:rerun-if-changed=src/sql/openssl_no_atexit.c");
    let sql_server = ["CARGO_FEATURE_POSTGRES", "CARGO_FEATURE_MYSQL"]
        .iter()
        .any(|f| std::env::var_os(f).is_some());
    if sql_server {
        cc::Build::new()
            .file("src/sql/openssl_no_atexit.c")
            .link_lib_modifier("+whole-archive")
            .compile("authstat_openssl_no_atexit");
    }
}
