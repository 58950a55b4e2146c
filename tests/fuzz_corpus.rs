//! The fuzz targets' committed corpus (`fuzz/corpus/<target>/`: seeds, and every input a fuzzer
//! once failed on) run through the same target bodies on stable, so a fixed finding stays fixed
//! without a nightly toolchain. The fuzzers themselves: `fuzz/Cargo.toml`, RELIABILITY.md.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} has no seeds", dir.display());
    inputs
}

fn run(target: &str, body: fn(&[u8])) {
    for (name, data) in corpus(target) {
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}/{name} fails its target");
    }
}

#[test]
fn the_admission_corpus_passes() {
    run("admission", sluice::fuzz::admission);
}

#[test]
fn the_annotations_corpus_passes() {
    run("annotations", sluice::fuzz::annotations);
}

#[test]
fn the_promql_template_corpus_passes() {
    run("promql_template", sluice::fuzz::promql_template);
}

#[test]
fn the_prometheus_response_corpus_passes() {
    run("prometheus_response", sluice::fuzz::prometheus_response);
}
