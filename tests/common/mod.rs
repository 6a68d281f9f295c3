//! Fixtures shared by the root package's integration tests (`mod common;`): the Python the
//! binary was built against, a cached virtualenv with a pinned Django and a fresh Django project,
//! fresh temporary directories, free loopback ports, and the path of the `wsgilab` binary.
//!
//! Everything lives under cargo's target directory: `target/test-cache/` keeps what is slow to
//! make (the virtualenv, reused across runs once a marker file says it is complete) and
//! `target/test-tmp/` holds per-test scratch directories. Several test binaries may ask for the
//! virtualenv at once: a lock directory (created atomically, holding the owner's pid) makes one
//! of them build it while the others wait.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// The Django release the tests run against, pinned exactly (the newest 5.2 patch when pinned).
pub const DJANGO_VERSION: &str = "5.2.19";

/// How long a test waits for another process to finish building the virtualenv.
const LOCK_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The interpreter the binary was built against (and so the one whose libpython it embeds).
pub fn python() -> PathBuf {
    PathBuf::from(env!("WSGILAB_PYTHON_EXECUTABLE"))
}

/// The `wsgilab` binary cargo built for these tests.
pub fn wsgilab() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wsgilab"))
}

/// Cargo's target directory (found from the binary's path, so `CARGO_TARGET_DIR` is honoured).
pub fn target_dir() -> PathBuf {
    let bin = wsgilab();
    // <target>/<profile>/wsgilab (or <target>/<triple>/<profile>/wsgilab)
    if let Some(dir) = bin.parent().and_then(Path::parent) {
        return dir.to_path_buf();
    }
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// A fresh, empty directory under `target/test-tmp/`, unique to this call.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = target_dir()
        .join("test-tmp")
        .join(format!("{name}-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot empty {}: {e}", dir.display()));
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// A virtualenv made by [`python()`] with Django [`DJANGO_VERSION`] installed, under
/// `target/test-cache/django-<version>-py<major.minor>/`. Built once (it needs PyPI the first
/// time), then reused; safe to call from several threads and test binaries at once.
pub fn django_venv() -> PathBuf {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(build_django_venv).clone()
}

/// Runs the virtualenv's `django-admin startproject mysite <parent>/mysite` and returns that
/// directory (it holds `manage.py` and the `mysite` package).
pub fn django_project(parent: &Path) -> PathBuf {
    let venv = django_venv();
    let project = parent.join("mysite");
    std::fs::create_dir_all(&project)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", project.display()));
    let output = Command::new(venv.join("bin").join("django-admin"))
        .arg("startproject")
        .arg("mysite")
        .arg(&project)
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .output()
        .expect("run django-admin");
    check(&output, "django-admin startproject mysite");
    assert!(
        project.join("manage.py").is_file() && project.join("mysite").join("wsgi.py").is_file(),
        "django-admin startproject did not create {}/manage.py and mysite/wsgi.py",
        project.display()
    );
    project
}

fn build_django_venv() -> PathBuf {
    cached_venv(
        &format!("django-{DJANGO_VERSION}"),
        &[&format!("django=={DJANGO_VERSION}")],
    )
}

/// A virtualenv with pinned tools (e.g. `uwsgitop==0.12`), cached like the Django one.
pub fn tool_venv(packages: &[&str]) -> PathBuf {
    let name = format!("tools-{}", packages.join("-").replace(['=', '.', '/'], "_"));
    cached_venv(&name, packages)
}

/// A virtualenv made by [`python()`] under `target/test-cache/<name>-py<major.minor>/` with
/// `packages` installed by pip; built once, then reused; safe to call concurrently.
fn cached_venv(name: &str, packages: &[&str]) -> PathBuf {
    let cache = target_dir().join("test-cache");
    let name = format!("{name}-py{}", env!("WSGILAB_PYTHON_VERSION"));
    let venv = cache.join(&name);
    let marker = venv.join(".wsgilab-complete");
    if marker.is_file() {
        return venv;
    }
    std::fs::create_dir_all(&cache)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", cache.display()));
    let _lock = DirLock::acquire(&cache.join(format!("{name}.lock")));
    if marker.is_file() {
        return venv; // another process built it while we waited
    }
    if venv.exists() {
        // A build that did not finish (killed, or pip failed): start again.
        std::fs::remove_dir_all(&venv)
            .unwrap_or_else(|e| panic!("cannot remove stale {}: {e}", venv.display()));
    }
    let output = Command::new(python())
        .args(["-m", "venv"])
        .arg(&venv)
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python().display()));
    check(
        &output,
        &format!("{} -m venv {}", python().display(), venv.display()),
    );
    let pip = Command::new(venv.join("bin").join("python"))
        .args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(packages)
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .output()
        .expect("run pip");
    if !pip.status.success() {
        panic!(
            "pip could not install {packages:?} into {} ({}). The first run needs \
             PyPI (network); later runs reuse the cached virtualenv.\n--- pip stderr ---\n{}",
            venv.display(),
            pip.status,
            tail(&pip.stderr, 40)
        );
    }
    let mut f = std::fs::File::create(&marker)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    writeln!(f, "{} python={}", packages.join(" "), python().display()).unwrap();
    venv
}

/// Panics with the command's stderr unless it succeeded.
fn check(output: &Output, what: &str) {
    if !output.status.success() {
        panic!(
            "`{what}` failed ({}).\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            tail(&output.stdout, 20),
            tail(&output.stderr, 40)
        );
    }
}

/// The last `lines` lines of some output.
fn tail(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A lock held by creating a directory (atomic on every file system) with the owner's pid
/// inside; a lock whose owner died is taken over. Released on drop, panics included.
struct DirLock {
    dir: PathBuf,
}

impl DirLock {
    fn acquire(dir: &Path) -> DirLock {
        let start = Instant::now();
        loop {
            match std::fs::create_dir(dir) {
                Ok(()) => {
                    std::fs::write(dir.join("pid"), std::process::id().to_string()).ok();
                    return DirLock {
                        dir: dir.to_path_buf(),
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Self::is_stale(dir) {
                        std::fs::remove_dir_all(dir).ok();
                        continue;
                    }
                    if start.elapsed() > LOCK_TIMEOUT {
                        panic!(
                            "waited {:?} for {} (another test building a cached \
                             virtualenv); remove it if no test is running",
                            LOCK_TIMEOUT,
                            dir.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("cannot create lock {}: {e}", dir.display()),
            }
        }
    }

    /// The owner is gone: its pid no longer runs, or it never wrote one within a minute.
    fn is_stale(dir: &Path) -> bool {
        match std::fs::read_to_string(dir.join("pid")) {
            Ok(pid) => {
                let pid = pid.trim();
                !pid.is_empty() && !Path::new("/proc").join(pid).exists()
            }
            Err(_) => std::fs::metadata(dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > Duration::from_secs(60)),
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

pub mod server;

/// The nginx binary, installed by `tests/setup/install-nginx.sh` (Debian's nginx-light) if the
/// machine has none; once per machine, one installer at a time.
pub fn nginx() -> PathBuf {
    static NGINX: OnceLock<PathBuf> = OnceLock::new();
    NGINX
        .get_or_init(|| {
            let installed = PathBuf::from("/usr/sbin/nginx");
            if !installed.is_file() {
                let cache = target_dir().join("test-cache");
                std::fs::create_dir_all(&cache).unwrap();
                let _lock = DirLock::acquire(&cache.join("nginx.lock"));
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/setup/install-nginx.sh");
                let output = Command::new("bash")
                    .arg(&script)
                    .output()
                    .expect("run install-nginx.sh");
                check(&output, &script.display().to_string());
            }
            assert!(
                installed.is_file(),
                "nginx is still missing after tests/setup/install-nginx.sh"
            );
            installed
        })
        .clone()
}
