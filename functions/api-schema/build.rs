//! Renders the repository's openapi.yaml as JSON into OUT_DIR, so the function serves both
//! forms without parsing anything at run time, and a document that does not parse fails the
//! build instead of a request.

use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let source = Path::new(&manifest_dir).join("../../openapi.yaml");
    println!("cargo:rerun-if-changed={}", source.display());
    let yaml = std::fs::read_to_string(&source)
        .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
    let document: serde_json::Value = serde_yaml_ng::from_str(&yaml)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", source.display()));
    let json = serde_json::to_string(&document).expect("a YAML document renders as JSON");
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    std::fs::write(Path::new(&out_dir).join("openapi.json"), json).expect("writing openapi.json");
}
