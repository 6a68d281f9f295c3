//! wsgilab's `hint:` lines: after an import failure or an interpreter that cannot start, look
//! around the file system (through the process seam) for what the user most likely meant — the
//! directory that holds their package, the virtualenv that has the missing library — and say
//! which flag to pass.

use std::path::{Path, PathBuf};

use crate::procs::Procs;
use crate::python::{AppSource, LoadFailure, LoadFailureCause, StartFailure, StartFailureCause};

/// How far below the working directory the search for a package or a virtualenv goes.
const SEARCH_DEPTH: usize = 3;
/// Directory names never searched: caches, VCS data, and the insides of virtualenvs.
const SKIPPED_DIRS: [&str; 5] = [
    "__pycache__",
    "node_modules",
    "site-packages",
    "target",
    "lib",
];

/// Hints for an app that failed to load.
pub fn for_load_failure(
    procs: &impl Procs,
    failure: &LoadFailure,
    source: &AppSource,
    cwd: &Path,
    virtualenv: Option<&Path>,
) -> Vec<String> {
    let mut hints = Vec::new();
    match &failure.cause {
        LoadFailureCause::ModuleNotFound { name } => {
            let app_module = match source {
                AppSource::Module { module, .. } => Some(module.as_str()),
                AppSource::File { .. } => None,
            };
            let searched = failure
                .sys_path
                .iter()
                .map(|p| {
                    if p == "." || p.is_empty() {
                        format!("'{p}' (= {})", cwd.display())
                    } else {
                        format!("'{p}'")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            hints.push(format!(
                "hint: Python looked for '{name}' in sys.path: {searched}"
            ));
            let is_own_package =
                app_module.is_some_and(|m| m == name || m.starts_with(&format!("{name}.")));
            if let (true, Some(app_module)) = (is_own_package, app_module) {
                hints.extend(own_package_hints(
                    procs,
                    name,
                    app_module,
                    &failure.sys_path,
                    cwd,
                ));
            } else {
                hints.extend(library_hints(procs, name, cwd, virtualenv));
            }
        }
        LoadFailureCause::CallableNotFound { callable } => {
            let place = match source {
                AppSource::Module { module, .. } => format!("module '{module}'"),
                AppSource::File { path, .. } => format!("file {}", path.display()),
            };
            hints.push(format!(
                "hint: {place} imported, but has no callable named '{callable}'; name the right one with --callable NAME (or --module module:NAME)"
            ));
        }
        LoadFailureCause::FileNotFound { path } => {
            let absolute = cwd.join(path);
            hints.push(format!(
                "hint: --wsgi-file {} does not exist (looked at {}); paths are relative to the working directory{}",
                path.display(),
                absolute.display(),
                " after --chdir"
            ));
        }
        LoadFailureCause::Exception => {
            hints.push("hint: the app's own code raised while being imported; the traceback above shows where".into());
        }
    }
    hints
}

/// Hints for an interpreter that could not start.
pub fn for_start_failure(procs: &impl Procs, failure: &StartFailure, cwd: &Path) -> Vec<String> {
    match &failure.cause {
        StartFailureCause::VirtualenvMissing { path } => {
            let mut hints = vec![format!(
                "hint: --virtualenv {} does not exist (wsgilab refuses to start; uWSGI's Python dies with the error above)",
                path.display()
            )];
            let found = find_virtualenvs(procs, cwd);
            if !found.is_empty() {
                hints.push(format!(
                    "hint: virtualenvs near {}: {}",
                    cwd.display(),
                    found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
            hints
        }
        StartFailureCause::VirtualenvVersion { path, venv_version, ours } => vec![
            format!(
                "hint: the virtualenv {} was made by Python {venv_version}, but wsgilab embeds Python {ours}: its packages cannot load here",
                path.display()
            ),
            format!(
                "hint: recreate it with python{ours} -m venv {} (and reinstall its packages), or use a wsgilab built against Python {venv_version}",
                path.display()
            ),
        ],
        StartFailureCause::Other => Vec::new(),
    }
}

/// The app's own module is missing: probably started from the wrong directory.
fn own_package_hints(
    procs: &impl Procs,
    missing: &str,
    app_module: &str,
    sys_path: &[String],
    cwd: &Path,
) -> Vec<String> {
    let mut hints = Vec::new();
    // `mysite.wsgi` missing while `mysite` imported: a directory named `mysite` without
    // `__init__.py` on sys.path became a namespace package and hid the real one.
    if let Some((parent, _)) = missing.rsplit_once('.') {
        let parent_path = parent.replace('.', "/");
        for entry in sys_path {
            let base = if entry.is_empty() || entry == "." {
                cwd.to_path_buf()
            } else {
                cwd.join(entry)
            };
            let dir = base.join(&parent_path);
            if procs.is_dir(&dir) && !procs.is_file(&dir.join("__init__.py")) {
                hints.push(format!(
                    "hint: '{parent}' imported as a namespace package from {} (a directory without __init__.py), which has no '{}'",
                    dir.display(),
                    &missing[parent.len() + 1..]
                ));
                break;
            }
        }
    }
    let mut places = Vec::new();
    // Below the working directory (the user is one level too high)...
    walk_dirs(procs, cwd, SEARCH_DEPTH, &mut |dir| {
        if dir != cwd && provides_module(procs, dir, app_module) {
            places.push(dir.to_path_buf());
        }
    });
    // ... or above it (the user is inside the package).
    for ancestor in cwd.ancestors().skip(1) {
        if provides_module(procs, ancestor, app_module) {
            places.push(ancestor.to_path_buf());
            break;
        }
    }
    if places.is_empty() {
        hints.push(format!(
            "hint: no directory within {SEARCH_DEPTH} levels below {} or above it contains '{app_module}'; pass the directory that holds it with --chdir or --pythonpath",
            cwd.display()
        ));
    }
    hints.extend(places.iter().take(3).map(|dir| {
        format!(
            "hint: '{app_module}' is in {}: start wsgilab from there, or pass --chdir {}",
            dir.display(),
            dir.display()
        )
    }));
    hints
}

/// A library is missing: probably the virtualenv that has it was not given.
fn library_hints(
    procs: &impl Procs,
    name: &str,
    cwd: &Path,
    virtualenv: Option<&Path>,
) -> Vec<String> {
    let top = name.split('.').next().unwrap_or(name);
    let mut hints = Vec::new();
    if let Some(venv) = virtualenv {
        hints.push(format!(
            "hint: the virtualenv {} (--virtualenv) has no '{top}': install it with {}/bin/pip install {top}",
            venv.display(),
            venv.display()
        ));
    }
    let having: Vec<PathBuf> = find_virtualenvs(procs, cwd)
        .into_iter()
        .filter(|venv| Some(venv.as_path()) != virtualenv && venv_has_package(procs, venv, top))
        .collect();
    match having.first() {
        Some(venv) => hints.push(format!(
            "hint: '{top}' is installed in the virtualenv {}: pass --virtualenv {}",
            venv.display(),
            venv.display()
        )),
        None if virtualenv.is_none() => hints.push(format!(
            "hint: '{top}' is not installed for this Python and no virtualenv near {} has it; install it, or pass the virtualenv that has it with --virtualenv",
            cwd.display()
        )),
        None => {}
    }
    hints
}

/// Whether `dir` on sys.path would provide the dotted module: `a/b.py` or a package `a/b/`.
fn provides_module(procs: &impl Procs, dir: &Path, dotted: &str) -> bool {
    let path = dir.join(dotted.replace('.', "/"));
    procs.is_dir(&path) || procs.is_file(&path.with_extension("py"))
}

fn is_virtualenv(procs: &impl Procs, dir: &Path) -> bool {
    procs.is_file(&dir.join("pyvenv.cfg"))
}

fn venv_has_package(procs: &impl Procs, venv: &Path, top: &str) -> bool {
    let lib = venv.join("lib");
    procs
        .read_dir(&lib)
        .unwrap_or_default()
        .iter()
        .any(|python| {
            python.starts_with("python")
                && provides_module(procs, &lib.join(python).join("site-packages"), top)
        })
}

/// Virtualenvs in and below the working directory, and beside each of its ancestors.
fn find_virtualenvs(procs: &impl Procs, cwd: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk_dirs(procs, cwd, SEARCH_DEPTH, &mut |dir| {
        if is_virtualenv(procs, dir) {
            found.push(dir.to_path_buf());
        }
    });
    for ancestor in cwd.ancestors().skip(1).take(3) {
        if is_virtualenv(procs, ancestor) {
            found.push(ancestor.to_path_buf());
        }
        for name in procs.read_dir(ancestor).unwrap_or_default() {
            let dir = ancestor.join(&name);
            if !cwd.starts_with(&dir) && is_virtualenv(procs, &dir) {
                found.push(dir);
            }
        }
    }
    // Nearest first (below the working directory, then up from it): the hint names the first.
    let mut seen = std::collections::HashSet::new();
    found.retain(|dir| seen.insert(dir.clone()));
    found
}

/// Visits `root` and the directories below it, breadth-first by name, skipping hidden ones and
/// the insides of virtualenvs.
fn walk_dirs(procs: &impl Procs, root: &Path, depth: usize, visit: &mut impl FnMut(&Path)) {
    let mut level = vec![root.to_path_buf()];
    for d in 0..=depth {
        let mut next = Vec::new();
        for dir in &level {
            visit(dir);
            if d == depth || (dir != root && is_virtualenv(procs, dir)) {
                continue;
            }
            for name in procs.read_dir(dir).unwrap_or_default() {
                if name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_str()) {
                    continue;
                }
                let child = dir.join(&name);
                if procs.is_dir(&child) {
                    next.push(child);
                }
            }
        }
        // A huge tree (a home directory) must not make start-up slow.
        if next.len() > 2000 {
            next.truncate(2000);
        }
        level = next;
    }
}
