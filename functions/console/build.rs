//! Compiles console/dist (the console's built assets, `node console/build.mjs`, run by
//! `make setup`, `make build` and `make test`) into the function: a table of every file with its
//! content type, its bytes and a gzipped copy made here once. A missing build fails with the
//! command that makes it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest_dir).join("../../console/dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    // The stamp changes with every build of the console, whatever files it wrote.
    println!("cargo:rerun-if-changed={}", dist.join(".stamp").display());
    if !dist.join("index.html").is_file() {
        panic!(
            "{} has no index.html: build the console first with `make setup` \
             (or `npm ci --prefix console && node console/build.mjs`)",
            dist.display()
        );
    }
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR");
    let mut names: Vec<String> = std::fs::read_dir(&dist)
        .expect("reading console/dist")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "budget.json")
        .collect();
    names.sort();
    let mut table = String::from("&[\n");
    for (i, name) in names.iter().enumerate() {
        let path = dist.join(name);
        let bytes = std::fs::read(&path).expect("reading an asset");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bytes).expect("gzip");
        let gzipped = gz.finish().expect("gzip");
        let gz_path = Path::new(&out_dir).join(format!("asset-{i}.gz"));
        std::fs::write(&gz_path, &gzipped).expect("writing a gzipped asset");
        let content_type = match name.rsplit('.').next() {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            _ => "application/octet-stream",
        };
        // Worth gzipping only when it saves something.
        let gzip = if gzipped.len() + 64 < bytes.len() {
            format!("Some(include_bytes!({:?}))", gz_path.display().to_string())
        } else {
            "None".to_string()
        };
        writeln!(
            table,
            "    Asset {{ name: {name:?}, content_type: {content_type:?}, body: include_bytes!({:?}), gzip: {gzip} }},",
            path.canonicalize().expect("asset path").display().to_string()
        )
        .expect("writing to a String");
    }
    table.push(']');
    std::fs::write(Path::new(&out_dir).join("assets.rs"), table).expect("writing assets.rs");
}
