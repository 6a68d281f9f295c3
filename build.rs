//! Make the binary and its tests load the libpython of the interpreter pyo3 was built against,
//! whatever `python3` is first on PATH or in the loader's default paths at run time, and tell the
//! code (and the tests, which build virtualenvs) which interpreter that is.
fn main() {
    let config = pyo3_build_config::get();
    if let Some(lib_dir) = config.lib_dir() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    if let Some(executable) = config.executable() {
        println!("cargo:rustc-env=WSGILAB_PYTHON_EXECUTABLE={executable}");
    }
    println!(
        "cargo:rustc-env=WSGILAB_PYTHON_VERSION={}",
        config.version()
    );
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
    bundle_scenarios();
}

/// Embeds `scenarios/*.toml` in the binary, in file-name order, so that `wsgilab replay` works
/// from anywhere.
fn bundle_scenarios() {
    let dir =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
            .join("scenarios");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let mut code = String::from("pub const BUNDLED: &[(&str, &str)] = &[\n");
    for name in names {
        let path = dir.join(&name);
        println!("cargo:rerun-if-changed={}", path.display());
        code.push_str(&format!(
            "    ({:?}, include_str!({:?})),\n",
            name.trim_end_matches(".toml"),
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("scenarios.rs");
    std::fs::write(out, code).expect("writing the list of bundled scenarios");
}
