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
}
