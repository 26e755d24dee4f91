//! Compiles `src/broker/mock_log_limits.c`, which raises the embedded broker's per-partition log
//! limits, against the internal headers of the librdkafka that rdkafka-sys built (its
//! `DEP_RDKAFKA_ROOT`, the configured source tree with `config.h`).

fn main() {
    let source = "src/broker/mock_log_limits.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=DEP_RDKAFKA_ROOT");
    let root = std::env::var("DEP_RDKAFKA_ROOT")
        .expect("rdkafka-sys reports the librdkafka tree it built (DEP_RDKAFKA_ROOT)");
    cc::Build::new()
        .file(source)
        .include(format!("{root}/src"))
        .include(&root)
        .warnings(false)
        .compile("sim_mock_log_limits");
}
