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
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc".into());
    println!("cargo:rustc-env=WSGILAB_RUSTC_VERSION={rustc_version}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
