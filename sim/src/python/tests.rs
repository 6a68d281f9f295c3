//! The model's behaviour, one case each: `sys.path` composition, imports that work and fail
//! the way CPython's do, and the app's declared behaviour.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use server::python::{
    App, AppResponse, AppSource, InterpreterSetup, LoadFailure, LoadFailureCause, Python,
    ResponsePart, StartFailureCause, WsgiRequest,
};

use super::*;
use crate::files::FileTree;
use crate::trace::EventKind;

const LIB: &str = "/usr/local/lib/python3.11";

/// The Django project layout `django-admin startproject mysite /srv/mysite` makes.
fn django_project() -> FileTree {
    let mut files = FileTree::new();
    files.add_file("/srv/mysite/manage.py", "import os\nimport sys\n");
    files.add_file("/srv/mysite/mysite/__init__.py", "");
    files.add_file("/srv/mysite/mysite/settings.py", "DEBUG = True\n");
    files.add_file(
        "/srv/mysite/mysite/wsgi.py",
        "\"\"\"\nWSGI config for mysite project.\n\"\"\"\n\nimport os\n\nfrom django.core.wsgi import get_wsgi_application\n\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n\napplication = get_wsgi_application()\n",
    );
    files
}

fn add_django(files: &mut FileTree, site_packages: &str) {
    files.add_file(
        format!("{site_packages}/django/__init__.py"),
        "VERSION = (5, 2, 0, 'final', 0)\n",
    );
    files.add_file(format!("{site_packages}/django/core/__init__.py"), "");
    files.add_file(
        format!("{site_packages}/django/core/wsgi.py"),
        "def get_wsgi_application():\n    return None\n",
    );
}

fn add_venv(files: &mut FileTree, dir: &str, version: &str) {
    files.add_file(
        format!("{dir}/pyvenv.cfg"),
        format!(
            "home = /usr/local/bin\ninclude-system-site-packages = false\nversion = {version}\n"
        ),
    );
    files.add_dir(format!("{dir}/lib/python3.11/site-packages"));
}

struct World {
    python: SimPython<TokioExecutor>,
    process: Arc<FixedProcess>,
}

fn world(files: FileTree, process: FixedProcess) -> World {
    let process = Arc::new(process);
    let python = SimPython::new(
        PythonInstall::default(),
        files,
        process.clone(),
        TokioExecutor::default(),
    );
    World { python, process }
}

fn setup(virtualenv: Option<&str>, pythonpath: &[&str]) -> InterpreterSetup {
    InterpreterSetup {
        virtualenv: virtualenv.map(PathBuf::from),
        pythonpath: pythonpath.iter().map(PathBuf::from).collect(),
    }
}

fn started(files: FileTree, cwd: &str) -> World {
    let mut w = world(files, FixedProcess::new(cwd));
    w.python.start(&setup(None, &[])).expect("starts");
    w
}

fn module(name: &str) -> AppSource {
    AppSource::Module {
        module: name.into(),
        callable: "application".into(),
    }
}

fn load_err(w: &mut World, source: &AppSource) -> LoadFailure {
    match w.python.load_app(source) {
        Ok(app) => panic!("{:?} imported from {}", source, app.location().file),
        Err(e) => e,
    }
}

fn last_line(failure: &LoadFailure) -> &str {
    failure.traceback.last().map(String::as_str).unwrap_or("")
}

fn system_path() -> Vec<String> {
    vec![
        "/usr/local/lib/python311.zip".into(),
        LIB.into(),
        format!("{LIB}/lib-dynload"),
    ]
}

// --- sys.path ---------------------------------------------------------------------------

#[test]
fn sys_path_without_a_virtualenv() {
    let mut w = world(django_project(), FixedProcess::new("/srv/mysite"));
    let info = w.python.start(&setup(None, &[])).unwrap();
    let mut expected = vec![".".to_string()];
    expected.extend(system_path());
    expected.push(format!("{LIB}/site-packages"));
    assert_eq!(w.python.sys_path(), expected);
    assert_eq!(info.prefix, "/usr/local");
    assert_eq!(info.base_prefix, "/usr/local");
    assert_eq!(info.version_short, "3.11.7");
    assert_eq!(
        info.version,
        "3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]"
    );
}

#[test]
fn sys_path_with_a_virtualenv() {
    let mut files = django_project();
    add_venv(&mut files, "/srv/venv", "3.11.7");
    let mut w = world(files, FixedProcess::new("/srv"));
    // Relative to the working directory, as CPython resolves the program's path.
    let info = w.python.start(&setup(Some("venv"), &[])).unwrap();
    assert_eq!(info.prefix, "/srv/venv");
    assert_eq!(info.base_prefix, "/usr/local");
    let mut expected = vec![".".to_string()];
    expected.extend(system_path());
    expected.push("/srv/venv/lib/python3.11/site-packages".into());
    assert_eq!(w.python.sys_path(), expected);
}

#[test]
fn a_virtualenv_with_system_site_packages_has_both_and_the_user_site() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/venv/pyvenv.cfg",
        "home = /usr/local/bin\ninclude-system-site-packages = true\nversion = 3.11.7\n",
    );
    files.add_dir("/home/ann/.local/lib/python3.11/site-packages");
    let mut w = world(
        files,
        FixedProcess::new("/srv").with_env("HOME", "/home/ann"),
    );
    w.python.start(&setup(Some("/srv/venv"), &[])).unwrap();
    let path = w.python.sys_path();
    assert_eq!(
        path[4..],
        [
            "/home/ann/.local/lib/python3.11/site-packages".to_string(),
            "/srv/venv/lib/python3.11/site-packages".into(),
            format!("{LIB}/site-packages"),
        ]
    );
}

#[test]
fn a_pth_file_adds_existing_directories() {
    let mut files = FileTree::new();
    files.add_file(
        format!("{LIB}/site-packages/project.pth"),
        "# editable install\n/srv/src\n/srv/missing\nimport os; os.environ\n",
    );
    files.add_dir("/srv/src");
    let w = started(files, "/");
    assert_eq!(
        w.python.sys_path().last().map(String::as_str),
        Some("/srv/src")
    );
}

#[test]
fn pythonpath_flags_come_first_then_the_working_directory_then_pythonpath_variable() {
    let process = FixedProcess::new("/srv").with_env("PYTHONPATH", "lib:/abs/./x::/abs/x");
    let mut w = world(FileTree::new(), process);
    w.python.start(&setup(None, &["/opt/lib", "src"])).unwrap();
    let mut expected: Vec<String> = ["/opt/lib", "src", ".", "/srv/lib", "/abs/x", "/srv"]
        .map(String::from)
        .to_vec();
    expected.extend(system_path());
    expected.push(format!("{LIB}/site-packages"));
    assert_eq!(w.python.sys_path(), expected);
}

#[test]
fn an_empty_pythonpath_variable_adds_nothing() {
    let mut w = world(
        FileTree::new(),
        FixedProcess::new("/srv").with_env("PYTHONPATH", ""),
    );
    w.python.start(&setup(None, &[])).unwrap();
    assert_eq!(w.python.sys_path()[1], "/usr/local/lib/python311.zip");
}

#[test]
fn dot_is_the_working_directory_at_the_first_import_after_chdir() {
    let mut files = django_project();
    add_django(&mut files, &format!("{LIB}/site-packages"));
    files.add_file("/srv/mysite/other.py", "x = 1\n");
    let mut w = started(files, "/");
    // --chdir /srv/mysite (after start, before the import: "." follows the process).
    w.process.set_cwd("/srv/mysite");
    assert_eq!(w.python.sys_path()[0], ".");
    w.python.load_app(&module("mysite.wsgi")).expect("imports");
    // CPython caches the finder for "." with the directory it had then.
    w.process.set_cwd("/");
    w.python
        .load_app(&AppSource::Module {
            module: "other".into(),
            callable: "x".into(),
        })
        .err()
        .map(|e| {
            assert_eq!(
                e.cause,
                LoadFailureCause::CallableNotFound {
                    callable: "x".into()
                }
            )
        })
        .expect("x is an int, not a callable");
}

// --- start failures ---------------------------------------------------------------------

#[test]
fn a_missing_virtualenv_cannot_start() {
    let mut w = world(FileTree::new(), FixedProcess::new("/srv"));
    let failure = w.python.start(&setup(Some("venv"), &[])).unwrap_err();
    assert_eq!(
        failure.cause,
        StartFailureCause::VirtualenvMissing {
            path: PathBuf::from("venv")
        }
    );
    assert_eq!(
        failure.lines,
        [
            "Set PythonHome to venv",
            "Fatal Python error: init_fs_encoding: failed to get the Python codec of the filesystem encoding",
            "ModuleNotFoundError: No module named 'encodings'",
        ]
    );
}

#[test]
fn a_virtualenv_of_another_python_cannot_start() {
    let mut files = FileTree::new();
    add_venv(&mut files, "/srv/venv", "3.12.1");
    let mut w = world(files, FixedProcess::new("/srv"));
    let failure = w.python.start(&setup(Some("/srv/venv"), &[])).unwrap_err();
    assert_eq!(
        failure.cause,
        StartFailureCause::VirtualenvVersion {
            path: PathBuf::from("/srv/venv"),
            venv_version: "3.12.1".into(),
            ours: "3.11".into(),
        }
    );
    assert_eq!(
        failure.lines.last().map(String::as_str),
        Some("ModuleNotFoundError: No module named 'encodings'")
    );
}

// --- imports ----------------------------------------------------------------------------

#[test]
fn started_in_the_parent_of_the_project_a_namespace_package_hides_the_real_one() {
    // `cd /srv; uwsgi --module mysite.wsgi`: /srv/mysite (no __init__.py) is a namespace
    // package, and it has no `wsgi`.
    let mut w = started(django_project(), "/srv");
    let failure = load_err(&mut w, &module("mysite.wsgi"));
    assert_eq!(
        failure.traceback,
        ["ModuleNotFoundError: No module named 'mysite.wsgi'"]
    );
    assert_eq!(
        failure.cause,
        LoadFailureCause::ModuleNotFound {
            name: "mysite.wsgi".into()
        }
    );
    assert_eq!(failure.sys_path[0], ".");
}

#[test]
fn started_far_from_the_project_nothing_is_found() {
    let mut w = started(django_project(), "/");
    let failure = load_err(&mut w, &module("mysite.wsgi"));
    assert_eq!(
        failure.traceback,
        ["ModuleNotFoundError: No module named 'mysite'"]
    );
}

#[test]
fn started_inside_the_package_directory() {
    let mut w = started(django_project(), "/srv/mysite/mysite");
    let failure = load_err(&mut w, &module("mysite.wsgi"));
    assert_eq!(
        failure.cause,
        LoadFailureCause::ModuleNotFound {
            name: "mysite".into()
        }
    );
}

#[test]
fn django_missing_without_a_virtualenv() {
    let mut w = started(django_project(), "/srv/mysite");
    let failure = load_err(&mut w, &module("mysite.wsgi"));
    assert_eq!(
        failure.traceback,
        [
            "Traceback (most recent call last):",
            "  File \"/srv/mysite/mysite/wsgi.py\", line 7, in <module>",
            "    from django.core.wsgi import get_wsgi_application",
            "ModuleNotFoundError: No module named 'django'",
        ]
    );
    assert_eq!(
        failure.cause,
        LoadFailureCause::ModuleNotFound {
            name: "django".into()
        }
    );
    // The failed module is not left half-imported; its package is.
    let names: Vec<&str> = w.python.modules().iter().map(|m| m.name.as_str()).collect();
    assert!(names.contains(&"mysite"));
    assert!(!names.contains(&"mysite.wsgi"));
}

#[test]
fn django_in_the_virtualenv() {
    let mut files = django_project();
    add_venv(&mut files, "/srv/venv", "3.11.7");
    add_django(&mut files, "/srv/venv/lib/python3.11/site-packages");
    let mut w = world(files, FixedProcess::new("/srv/mysite"));
    w.python.start(&setup(Some("/srv/venv"), &[])).unwrap();
    let app = w.python.load_app(&module("mysite.wsgi")).expect("imports");
    assert_eq!(app.location().module, "mysite.wsgi");
    assert_eq!(app.location().file, "/srv/mysite/mysite/wsgi.py");
    assert_eq!(app.location().line, 11);
}

#[test]
fn django_in_the_system_site_packages_is_not_seen_from_a_virtualenv() {
    let mut files = django_project();
    add_venv(&mut files, "/srv/venv", "3.11.7");
    add_django(&mut files, &format!("{LIB}/site-packages"));
    let mut w = world(files, FixedProcess::new("/srv/mysite"));
    w.python.start(&setup(Some("/srv/venv"), &[])).unwrap();
    let failure = load_err(&mut w, &module("mysite.wsgi"));
    assert_eq!(
        last_line(&failure),
        "ModuleNotFoundError: No module named 'django'"
    );
}

#[test]
fn namespace_portions_are_collected_across_entries() {
    let mut files = FileTree::new();
    files.add_file("/a/ns/one.py", "application = lambda e, s: []\n");
    files.add_file("/b/ns/two.py", "def application(e, s): return []\n");
    let mut w = world(files, FixedProcess::new("/"));
    w.python.start(&setup(None, &["/a", "/b"])).unwrap();
    w.python.load_app(&module("ns.two")).expect("ns.two");
    w.python.load_app(&module("ns.one")).expect("ns.one");
    let ns = w
        .python
        .modules()
        .into_iter()
        .find(|m| m.name == "ns")
        .unwrap()
        .clone();
    assert_eq!(ns.file, None);
    assert_eq!(ns.search, Some(vec!["/a/ns".into(), "/b/ns".into()]));
    let failure = load_err(&mut w, &module("ns.three"));
    assert_eq!(
        last_line(&failure),
        "ModuleNotFoundError: No module named 'ns.three'"
    );
}

#[test]
fn a_regular_package_later_on_sys_path_beats_an_earlier_namespace_portion() {
    let mut files = FileTree::new();
    files.add_file("/a/pkg/only_in_a.py", "application = 1\n");
    files.add_file("/b/pkg/__init__.py", "");
    let mut w = world(files, FixedProcess::new("/"));
    w.python.start(&setup(None, &["/a", "/b"])).unwrap();
    let failure = load_err(&mut w, &module("pkg.only_in_a"));
    assert_eq!(
        last_line(&failure),
        "ModuleNotFoundError: No module named 'pkg.only_in_a'"
    );
    let pkg = w
        .python
        .modules()
        .into_iter()
        .find(|m| m.name == "pkg")
        .unwrap()
        .clone();
    assert_eq!(pkg.file.as_deref(), Some("/b/pkg/__init__.py"));
}

#[test]
fn a_module_file_shadows_a_namespace_directory_beside_it() {
    let mut files = FileTree::new();
    files.add_file("/srv/mysite.py", "x = 1\n");
    files.add_file("/srv/mysite/wsgi.py", "application = 1\n");
    let mut w = started(files, "/srv");
    let failure = load_err(&mut w, &module("mysite.wsgi"));
    assert_eq!(
        failure.traceback,
        ["ModuleNotFoundError: No module named 'mysite.wsgi'; 'mysite' is not a package"]
    );
    assert_eq!(
        failure.cause,
        LoadFailureCause::ModuleNotFound {
            name: "mysite.wsgi".into()
        }
    );
}

#[test]
fn a_regular_package_beats_a_module_file_beside_it() {
    let mut files = FileTree::new();
    files.add_file("/srv/mysite.py", "x = 1\n");
    files.add_file("/srv/mysite/__init__.py", "");
    files.add_file("/srv/mysite/wsgi.py", "def application(e, s): pass\n");
    let mut w = started(files, "/srv");
    w.python
        .load_app(&module("mysite.wsgi"))
        .expect("the package wins");
}

#[test]
fn a_module_earlier_on_sys_path_shadows_a_package_later() {
    let mut files = FileTree::new();
    files.add_file("/first/mysite.py", "x = 1\n");
    files.add_file("/second/mysite/__init__.py", "");
    files.add_file("/second/mysite/wsgi.py", "def application(e, s): pass\n");
    let mut w = world(files, FixedProcess::new("/"));
    w.python
        .start(&setup(None, &["/first", "/second"]))
        .unwrap();
    let failure = load_err(&mut w, &module("mysite.wsgi"));
    assert_eq!(
        last_line(&failure),
        "ModuleNotFoundError: No module named 'mysite.wsgi'; 'mysite' is not a package"
    );
}

#[test]
fn a_project_module_shadows_the_standard_library_but_not_what_is_already_imported() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/json.py",
        "raise RuntimeError('this is the project json.py')\n",
    );
    files.add_file("/srv/os.py", "raise RuntimeError('never imported')\n");
    files.add_file(
        "/srv/app.py",
        "import os\nimport json\ndef application(e, s): pass\n",
    );
    let mut w = started(files, "/srv");
    let failure = load_err(&mut w, &module("app"));
    assert_eq!(
        failure.traceback,
        [
            "Traceback (most recent call last):",
            "  File \"/srv/app.py\", line 2, in <module>",
            "    import json",
            "  File \"/srv/json.py\", line 1, in <module>",
            "    raise RuntimeError('this is the project json.py')",
            "RuntimeError: this is the project json.py",
        ]
    );
    assert_eq!(failure.cause, LoadFailureCause::Exception);
}

#[test]
fn relative_imports_resolve_against_the_package() {
    let mut files = FileTree::new();
    files.add_file("/srv/mysite/__init__.py", "from . import helpers\n");
    files.add_file(
        "/srv/mysite/helpers.py",
        "import json\nfrom json import loads\n",
    );
    files.add_file("/srv/mysite/views.py", "def index(): pass\n");
    files.add_file(
        "/srv/mysite/wsgi.py",
        "from .views import index\nfrom .helpers import loads as parse\nfrom . import views, helpers\napplication = index\n",
    );
    files.add_file(
        "/srv/mysite/broken.py",
        "from .views import index, nothere\n",
    );
    files.add_file("/srv/mysite/beyond.py", "from .. import x\n");
    files.add_file("/srv/mysite/missing.py", "from .nothing import x\n");
    let mut w = started(files, "/srv");
    w.python.load_app(&module("mysite.wsgi")).expect("imports");
    let failure = load_err(&mut w, &module("mysite.broken"));
    assert_eq!(
        failure.traceback,
        [
            "Traceback (most recent call last):",
            "  File \"/srv/mysite/broken.py\", line 1, in <module>",
            "    from .views import index, nothere",
            "ImportError: cannot import name 'nothere' from 'mysite.views' (/srv/mysite/views.py)",
        ]
    );
    assert_eq!(failure.cause, LoadFailureCause::Exception);
    let failure = load_err(&mut w, &module("mysite.beyond"));
    assert_eq!(
        last_line(&failure),
        "ImportError: attempted relative import beyond top-level package"
    );
    let failure = load_err(&mut w, &module("mysite.missing"));
    assert_eq!(
        last_line(&failure),
        "ModuleNotFoundError: No module named 'mysite.nothing'"
    );
}

#[test]
fn try_except_import_error_falls_back() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/app.py",
        "try:\n    import simplejson as json\nexcept ImportError:\n    import json\n\ntry:\n    from local_settings import *\nexcept ModuleNotFoundError:\n    pass\n\ndef application(environ, start_response):\n    return [json.dumps({}).encode()]\n",
    );
    let mut w = started(files, "/srv");
    w.python
        .load_app(&module("app"))
        .expect("the fallback imports");
}

#[test]
fn a_failing_fallback_shows_both_exceptions() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/app.py",
        "try:\n    import simplejson as json\nexcept ImportError:\n    import json2\n",
    );
    let mut w = started(files, "/srv");
    let failure = load_err(&mut w, &module("app"));
    assert_eq!(
        failure.traceback,
        [
            "Traceback (most recent call last):",
            "  File \"/srv/app.py\", line 2, in <module>",
            "    import simplejson as json",
            "ModuleNotFoundError: No module named 'simplejson'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"/srv/app.py\", line 4, in <module>",
            "    import json2",
            "ModuleNotFoundError: No module named 'json2'",
        ]
    );
    assert_eq!(
        failure.cause,
        LoadFailureCause::ModuleNotFound {
            name: "json2".into()
        }
    );
}

#[test]
fn an_except_clause_that_does_not_match_lets_the_error_through() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/app.py",
        "try:\n    import simplejson\nexcept KeyError:\n    pass\n",
    );
    let mut w = started(files, "/srv");
    let failure = load_err(&mut w, &module("app"));
    assert_eq!(
        last_line(&failure),
        "ModuleNotFoundError: No module named 'simplejson'"
    );
}

#[test]
fn code_that_does_not_run_at_import_imports_nothing() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/app.py",
        "import sys\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mypy_stubs\nif sys.version_info < (3, 0):\n    import py2_only\nelif sys.version_info >= (3, 8):\n    from json import loads\nelse:\n    import neither\ndef application(environ, start_response):\n    import lazily_imported\n    return []\nclass Thing:\n    def method(self):\n        import also_lazy\nif __name__ == '__main__':\n    import only_as_a_script\n",
    );
    let mut w = started(files, "/srv");
    w.python.load_app(&module("app")).expect("imports");
}

#[test]
fn a_circular_import_sees_a_partially_initialized_module() {
    let mut files = FileTree::new();
    files.add_file("/srv/a.py", "import os\nfrom b import y\nx = 1\n");
    files.add_file("/srv/b.py", "from a import x\ny = 2\n");
    let mut w = started(files, "/srv");
    let failure = load_err(&mut w, &module("a"));
    assert_eq!(
        failure.traceback[1..],
        [
            "  File \"/srv/a.py\", line 2, in <module>",
            "    from b import y",
            "  File \"/srv/b.py\", line 1, in <module>",
            "    from a import x",
            "ImportError: cannot import name 'x' from partially initialized module 'a' (most likely due to a circular import) (/srv/a.py)",
        ]
    );
}

#[test]
fn an_extension_module_built_for_another_python_is_not_found() {
    let mut files = FileTree::new();
    files.add_file("/srv/fast.cpython-312-x86_64-linux-gnu.so", "\x7fELF");
    files.add_file("/srv/fast2.cpython-311-x86_64-linux-gnu.so", "\x7fELF");
    files.add_file(
        "/srv/app.py",
        "import fast2\nfrom fast2 import anything\nimport fast\n",
    );
    let mut w = started(files, "/srv");
    let failure = load_err(&mut w, &module("app"));
    assert_eq!(
        last_line(&failure),
        "ModuleNotFoundError: No module named 'fast'"
    );
}

#[test]
fn sys_path_edits_in_the_wsgi_file_take_effect() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/project/deploy/wsgi.py",
        "import os, sys\nsys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))\nfrom mysite.app import application\n",
    );
    files.add_file("/srv/project/mysite/__init__.py", "");
    files.add_file(
        "/srv/project/mysite/app.py",
        "def application(e, s): pass\n",
    );
    let mut w = started(files, "/");
    let app = w
        .python
        .load_app(&AppSource::File {
            path: "/srv/project/deploy/wsgi.py".into(),
            callable: "application".into(),
        })
        .expect("imports");
    assert_eq!(app.location().module, "uwsgi_file_wsgi");
    assert_eq!(w.python.sys_path()[0], "/srv/project");
}

#[test]
fn a_missing_callable() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/app.py",
        "def app(environ, start_response):\n    return []\n",
    );
    files.add_file("/srv/none.py", "application = None\n");
    let mut w = started(files, "/srv");
    let failure = load_err(&mut w, &module("app"));
    assert_eq!(
        failure.cause,
        LoadFailureCause::CallableNotFound {
            callable: "application".into()
        }
    );
    assert!(failure.traceback.is_empty());
    let failure = load_err(&mut w, &module("none"));
    assert!(matches!(
        failure.cause,
        LoadFailureCause::CallableNotFound { .. }
    ));
    w.python
        .load_app(&AppSource::Module {
            module: "app".into(),
            callable: "app".into(),
        })
        .expect("--callable app");
}

#[test]
fn wsgi_file_missing() {
    let mut w = started(FileTree::new(), "/srv");
    let source = AppSource::File {
        path: "app.py".into(),
        callable: "application".into(),
    };
    let failure = load_err(&mut w, &source);
    assert_eq!(
        failure.cause,
        LoadFailureCause::FileNotFound {
            path: "app.py".into()
        }
    );
    assert_eq!(failure.traceback, ["failed to open python file app.py"]);
}

#[test]
fn wsgi_file_is_relative_to_the_working_directory_and_has_no_package() {
    let mut files = FileTree::new();
    files.add_file("/srv/app.py", "import os\nfrom . import helpers\n");
    let mut w = started(files, "/srv");
    let failure = load_err(
        &mut w,
        &AppSource::File {
            path: "app.py".into(),
            callable: "application".into(),
        },
    );
    assert_eq!(
        failure.traceback,
        [
            "Traceback (most recent call last):",
            "  File \"<frozen importlib._bootstrap_external>\", line 940, in exec_module",
            "  File \"<frozen importlib._bootstrap>\", line 241, in _call_with_frames_removed",
            "  File \"/srv/app.py\", line 2, in <module>",
            "    from . import helpers",
            "ImportError: attempted relative import with no known parent package",
        ]
    );
}

#[test]
fn a_module_raising_at_import_names_its_exception_class() {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/lib/errors.py",
        "class ImproperlyConfigured(Exception):\n    pass\n",
    );
    files.add_file(
        "/srv/app.py",
        "import os\nfrom errors import ImproperlyConfigured\nif not os.environ.get('SECRET_KEY'):\n    raise ImproperlyConfigured(\"The SECRET_KEY setting must not be empty.\")\n",
    );
    let mut w = world(files, FixedProcess::new("/srv"));
    w.python.start(&setup(None, &["lib"])).unwrap();
    let failure = load_err(&mut w, &module("app"));
    assert_eq!(
        last_line(&failure),
        "errors.ImproperlyConfigured: The SECRET_KEY setting must not be empty."
    );
    assert_eq!(failure.cause, LoadFailureCause::Exception);

    // With the variable set, the same module imports.
    let mut files = FileTree::new();
    files.add_file(
        "/srv/lib/errors.py",
        "class ImproperlyConfigured(Exception):\n    pass\n",
    );
    files.add_file(
        "/srv/app.py",
        "import os\nfrom errors import ImproperlyConfigured\nif not os.environ.get('SECRET_KEY'):\n    raise ImproperlyConfigured('empty')\ndef application(e, s): pass\n",
    );
    let mut w = world(files, FixedProcess::new("/srv").with_env("SECRET_KEY", "x"));
    w.python.start(&setup(None, &["lib"])).unwrap();
    w.python.load_app(&module("app")).expect("imports");
}

#[test]
fn a_forked_copy_keeps_what_was_imported() {
    let mut files = django_project();
    add_django(&mut files, &format!("{LIB}/site-packages"));
    let mut w = started(files, "/srv/mysite");
    w.python.load_app(&module("mysite.wsgi")).unwrap();
    let mut child = w.python.clone();
    w.process.set_cwd("/");
    // Already in sys.modules: not executed again, found whatever the directory.
    child.load_app(&module("mysite.wsgi")).expect("inherited");
}

// --- import-time effects ------------------------------------------------------------------

#[test]
fn threads_and_connections_started_at_import_are_reported() {
    let mut files = django_project();
    add_django(&mut files, &format!("{LIB}/site-packages"));
    let trace = crate::trace::Trace::default();
    let process = Arc::new(FixedProcess::new("/srv/mysite"));
    let mut python = SimPython::new(
        PythonInstall::default(),
        files,
        process,
        TokioExecutor::default(),
    )
    .with_behaviour(AppBehaviour {
        starts_thread_at_import: true,
        opens_connection_at_import: true,
        ..AppBehaviour::default()
    })
    .with_trace(trace.clone(), "server");
    python.start(&setup(None, &[])).unwrap();
    python.load_app(&module("mysite.wsgi")).unwrap();
    let effects = python.import_effects();
    assert_eq!(effects.len(), 2);
    assert_eq!(effects[0].kind, ImportEffectKind::Thread);
    assert_eq!(effects[0].pid, Some(1000));
    assert!(effects[0]
        .after_fork()
        .contains("does not exist in the forked worker"));
    assert!(effects[1].after_fork().contains("shared"));
    let kinds: Vec<EventKind> = trace.events().into_iter().map(|e| e.kind).collect();
    use EventKind::*;
    assert_eq!(kinds, [PythonStart, Import, ImportThread, ImportConnection]);
}

// --- the app -----------------------------------------------------------------------------

fn request(method: &str, path: &str) -> WsgiRequest {
    WsgiRequest {
        vars: vec![
            ("REQUEST_METHOD".into(), method.as_bytes().to_vec().into()),
            ("PATH_INFO".into(), path.as_bytes().to_vec().into()),
        ],
        url_scheme: "http",
        ..WsgiRequest::default()
    }
}

fn app_with(
    behaviour: AppBehaviour,
) -> (SimApp<TokioExecutor>, TokioExecutor, crate::trace::Trace) {
    let mut files = FileTree::new();
    files.add_file(
        "/srv/app.py",
        "import json\n\ndef application(environ, start_response):\n    # the app\n    data = json.dumps({})\n    raise RuntimeError('boom')\n",
    );
    let executor = TokioExecutor::default();
    let trace = crate::trace::Trace::default();
    let mut python = SimPython::new(
        PythonInstall::default(),
        files,
        Arc::new(FixedProcess::new("/srv")),
        executor.clone(),
    )
    .with_behaviour(behaviour)
    .with_trace(trace.clone(), "server");
    python.start(&setup(None, &[])).unwrap();
    let app = python.load_app(&module("app")).unwrap();
    (app, executor, trace)
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

fn behaviour(json: &str) -> AppBehaviour {
    serde_json::from_str(json).unwrap()
}

#[test]
fn the_app_answers_with_a_head_then_chunks() {
    let (app, executor, trace) = app_with(behaviour(
        r#"{"default": {"cpu_ms": 2, "sleep_ms": 3, "body_bytes": 150000, "body": "abc", "leak_bytes": 4096}}"#,
    ));
    let parts = run(async {
        let mut response = app.call(request("GET", "/")).await.unwrap();
        let mut parts = Vec::new();
        while let Some(part) = response.next_part().await.unwrap() {
            parts.push(part);
        }
        assert!(response.is_exhausted());
        response.close().unwrap();
        parts
    });
    assert_eq!(
        parts[0],
        ResponsePart::Head {
            status: "200 OK".into(),
            headers: vec![
                ("Content-Type".into(), "text/html".into()),
                ("Content-Length".into(), "150000".into()),
            ],
        }
    );
    let sizes: Vec<usize> = parts[1..]
        .iter()
        .map(|p| match p {
            ResponsePart::Chunk(c) => c.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, [65536, 65536, 150000 - 2 * 65536]);
    match &parts[1] {
        ResponsePart::Chunk(c) => assert_eq!(&c[..7], b"abcabca"),
        _ => unreachable!(),
    }
    let log = executor.log();
    assert_eq!(log.cpu, Duration::from_millis(2));
    assert_eq!(log.slept, Duration::from_millis(3));
    assert_eq!(log.rss_grown, 4096);
    let kinds: Vec<EventKind> = trace
        .events()
        .into_iter()
        .map(|e| e.kind)
        .skip_while(|k| *k != EventKind::AppStart)
        .collect();
    use EventKind::*;
    assert_eq!(kinds, [AppStart, Leak, Cpu, Sleep, AppEnd]);
}

#[test]
fn routes_match_the_longest_prefix_and_the_method() {
    let b = behaviour(
        r#"{"routes": [
            {"path": "/", "status": 404},
            {"path": "/api", "status": 201},
            {"path": "/api", "method": "POST", "status": 202},
            {"path": "/api/slow", "sleep_ms": 5000}
        ]}"#,
    );
    let status = |m: &str, p: &str| b.route_for(m, p).1.status_line();
    assert_eq!(status("GET", "/"), "404 Not Found");
    assert_eq!(status("GET", "/api/x"), "201 Created");
    assert_eq!(status("POST", "/api/x"), "201 Created");
    assert_eq!(status("GET", "/api/slow/1"), "200 OK");
    let only_post = behaviour(r#"{"routes": [{"path": "/api", "method": "POST", "status": 202}]}"#);
    assert_eq!(only_post.route_for("post", "/api").1.status, 202);
    assert_eq!(only_post.route_for("GET", "/api").1.status, 200);
}

#[test]
fn scenario_typos_are_refused() {
    let err = serde_json::from_str::<AppBehaviour>(r#"{"routes": [{"path": "/", "cpu": 5}]}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `cpu`"), "{err}");
    let err = serde_json::from_str::<AppBehaviour>(r#"{"default": {"cpu": 5}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `cpu`"), "{err}");
    let b = behaviour(
        r#"{"routes": [{"path": "/crash", "crash": "SIGSEGV"}], "default": {"crash": 6}}"#,
    );
    assert_eq!(b.routes[0].behaviour.crash, Some(CrashSignal(11)));
    assert_eq!(b.default.crash, Some(CrashSignal(6)));
    assert!(serde_json::from_str::<AppBehaviour>(r#"{"default": {"crash": "SIGNOPE"}}"#).is_err());
}

#[test]
fn a_raising_app_gives_a_traceback_at_its_raise() {
    let (app, _, trace) = app_with(behaviour(r#"{"default": {"raise": "RuntimeError: boom"}}"#));
    let error = run(app.call(request("GET", "/"))).expect_err("raises");
    assert_eq!(
        error.traceback,
        [
            "Traceback (most recent call last):",
            "  File \"/srv/app.py\", line 6, in application",
            "    raise RuntimeError('boom')",
            "RuntimeError: boom",
        ]
    );
    assert_eq!(trace.events().last().unwrap().kind, EventKind::Raise);
    assert_eq!(app::exception_line("boom"), "Exception: boom");
    assert_eq!(app::exception_line("KeyError"), "KeyError");
    assert_eq!(app::exception_line("a.b.Oops: x"), "a.b.Oops: x");
}

#[test]
fn a_crashing_or_hanging_app_never_returns() {
    for (json, check) in [
        (
            r#"{"default": {"crash": "SIGSEGV"}}"#,
            (|log: ExecutorLog| assert_eq!(log.crashed, Some(11))) as fn(ExecutorLog),
        ),
        (r#"{"default": {"hang": true}}"#, |log: ExecutorLog| {
            assert!(log.hung)
        }),
    ] {
        let (app, executor, _) = app_with(behaviour(json));
        let finished = run(async {
            tokio::time::timeout(Duration::from_millis(20), app.call(request("GET", "/")))
                .await
                .is_ok()
        });
        assert!(!finished);
        check(executor.log());
    }
}

// --- fitting the server --------------------------------------------------------------------

/// What `server::master::Master` and `server::worker::worker_process` ask of the seam.
fn fits_the_server<Y>()
where
    Y: Python + server::procs::ForkHooks + Clone + Send + 'static,
    Y::App: Clone + Send + Sync + 'static,
{
}

#[test]
fn sim_python_fits_the_master_and_the_worker() {
    fits_the_server::<SimPython<TokioExecutor>>();
    // The simulated process seam can be the interpreter's view of its process.
    fn view<V: ProcessView>() {}
    view::<ProcsView<crate::procs::SimProcs>>();
}
