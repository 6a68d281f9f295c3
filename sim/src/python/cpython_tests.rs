//! The model against the real thing: each case's files are written to a temporary directory,
//! the model imports from the same paths, and the machine's own `python3` (CPython 3.11)
//! imports with the `sys.path` the model composed. The tracebacks must be the same, line for
//! line (less the `<string>` frame of `python3 -c`, which uWSGI does not have).
//!
//! Without a `python3` 3.11 on the machine these tests say so on stderr and pass.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use server::python::{AppSource, InterpreterSetup, LoadFailureCause, Python};

use super::*;
use crate::files::FileTree;

/// The real interpreter: its executable (not a version-manager shim), prefix and version.
struct Real {
    executable: String,
    prefix: String,
    version: String,
}

fn real_python() -> Option<Real> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sys; print(sys.executable); print(sys.base_prefix); print(sys.version.split()[0])",
        ])
        .output();
    let skip = |why: String| {
        eprintln!("\n*** SKIPPED: the CPython comparison needs python3 3.11 on PATH: {why} ***\n");
        None
    };
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => return skip(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => return skip(e.to_string()),
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = text.lines();
    let real = Real {
        executable: lines.next()?.to_string(),
        prefix: lines.next()?.to_string(),
        version: lines.next()?.to_string(),
    };
    if !real.version.starts_with("3.11.") {
        return skip(format!("python3 is {}", real.version));
    }
    Some(real)
}

/// A temporary directory, removed when dropped.
struct TempRoot(PathBuf);

impl TempRoot {
    fn new() -> TempRoot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wsgilab-simpy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempRoot(dir)
    }

    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.0.clone()
        } else {
            self.0.join(rel)
        }
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One comparison: files (content `None` for an empty directory), where the process is,
/// `--pythonpath` and `--virtualenv` (relative to the root), and what to import.
struct Case {
    name: &'static str,
    files: Vec<(&'static str, Option<&'static str>)>,
    cwd: &'static str,
    pythonpath: Vec<&'static str>,
    virtualenv: Option<&'static str>,
    source: Source,
    callable: &'static str,
}

enum Source {
    Module(&'static str),
    File(&'static str),
}

impl Case {
    fn new(name: &'static str, cwd: &'static str, source: Source) -> Case {
        Case {
            name,
            files: Vec::new(),
            cwd,
            pythonpath: Vec::new(),
            virtualenv: None,
            source,
            callable: "application",
        }
    }

    fn file(mut self, path: &'static str, content: &'static str) -> Case {
        self.files.push((path, Some(content)));
        self
    }

    fn dir(mut self, path: &'static str) -> Case {
        self.files.push((path, None));
        self
    }

    fn pythonpath(mut self, entry: &'static str) -> Case {
        self.pythonpath.push(entry);
        self
    }

    fn virtualenv(mut self, dir: &'static str) -> Case {
        self.virtualenv = Some(dir);
        self
    }

    fn callable(mut self, name: &'static str) -> Case {
        self.callable = name;
        self
    }
}

/// What the model says: `OK`, `CALLABLE_NOT_FOUND`, or the traceback.
fn model_outcome(
    case: &Case,
    real: &Real,
    root: &TempRoot,
    tree: FileTree,
) -> (Vec<String>, Vec<String>) {
    let process = Arc::new(FixedProcess::new(root.path(case.cwd)));
    let mut python = SimPython::new(
        PythonInstall::new(&real.prefix, &real.version),
        tree,
        process,
        TokioExecutor::default(),
    );
    let setup = InterpreterSetup {
        virtualenv: case.virtualenv.map(|v| root.path(v)),
        // `@dir` is passed as written, relative to the working directory.
        pythonpath: case
            .pythonpath
            .iter()
            .map(|p| match p.strip_prefix('@') {
                Some(raw) => PathBuf::from(raw),
                None => root.path(p),
            })
            .collect(),
    };
    python
        .start(&setup)
        .expect("the model's interpreter starts");
    let source = match case.source {
        Source::Module(m) => AppSource::Module {
            module: m.into(),
            callable: case.callable.into(),
        },
        Source::File(f) => AppSource::File {
            path: f.into(),
            callable: case.callable.into(),
        },
    };
    let sys_path = python.sys_path();
    let outcome = match python.load_app(&source) {
        Ok(_) => vec!["OK".to_string()],
        Err(f) if matches!(f.cause, LoadFailureCause::CallableNotFound { .. }) => {
            vec!["CALLABLE_NOT_FOUND".to_string()]
        }
        Err(f) => f.traceback,
    };
    (outcome, sys_path)
}

/// What CPython says, importing with `sys_path` from the case's working directory.
fn real_outcome(case: &Case, real: &Real, root: &TempRoot, sys_path: &[String]) -> Vec<String> {
    // The real system site-packages holds whatever this machine has installed; the model's
    // is empty. Leave it out.
    let system_site = format!("{}/lib/python3.11/site-packages", real.prefix);
    let path: Vec<&String> = sys_path.iter().filter(|p| **p != system_site).collect();
    let path_literal = format!(
        "[{}]",
        path.iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let import = match case.source {
        Source::Module(m) => format!("import {m}\nm = sys.modules['{m}']"),
        Source::File(f) => format!(
            "import importlib.util as u\ns = u.spec_from_file_location('uwsgi_file_x', {f:?})\nm = u.module_from_spec(s)\ns.loader.exec_module(m)"
        ),
    };
    let script = format!(
        "import sys\nsys.path[:] = {path_literal}\n{import}\nprint('OK' if callable(getattr(m, {:?}, None)) else 'CALLABLE_NOT_FOUND')",
        case.callable
    );
    let output = Command::new(&real.executable)
        .args(["-B", "-E", "-s", "-c", &script])
        .current_dir(root.path(case.cwd))
        .env_clear()
        .output()
        .expect("python3 runs");
    let text = if output.status.success() {
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    normalize_real(&text)
}

/// Drops the frames of the `-c` script itself, and a traceback header left with no frame.
fn normalize_real(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("  File \"<string>\""))
        .collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if *line == "Traceback (most recent call last):"
            && !lines
                .get(i + 1)
                .is_some_and(|next| next.starts_with("  File "))
        {
            continue;
        }
        out.push(line.to_string());
    }
    out
}

fn compare(cases: Vec<Case>) {
    let Some(real) = real_python() else {
        return;
    };
    let mut failures = Vec::new();
    for case in cases {
        let root = TempRoot::new();
        let mut tree = FileTree::new();
        for (rel, content) in &case.files {
            let path = root.path(rel);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, text).unwrap();
                    tree.add_file(&path, *text);
                }
                None => {
                    std::fs::create_dir_all(&path).unwrap();
                    tree.add_dir(&path);
                }
            }
        }
        let (model, sys_path) = model_outcome(&case, &real, &root, tree);
        let cpython = real_outcome(&case, &real, &root, &sys_path);
        eprintln!(
            "{}: model {:?}, CPython {:?}",
            case.name,
            model.last(),
            cpython.last()
        );
        if model != cpython {
            failures.push(format!(
                "case {}:\n  model:   {model:#?}\n  CPython: {cpython:#?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

const WSGI: &str = "\"\"\"WSGI config.\"\"\"\n\nimport os\n\nfrom django.core.wsgi import get_wsgi_application\n\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n\napplication = get_wsgi_application()\n";

fn django_project(case: Case) -> Case {
    case.file("srv/mysite/manage.py", "import sys\n")
        .file("srv/mysite/mysite/__init__.py", "")
        .file("srv/mysite/mysite/settings.py", "DEBUG = True\n")
        .file("srv/mysite/mysite/wsgi.py", WSGI)
}

/// A stub Django in the virtualenv at `srv/venv`.
fn with_django_in_venv(case: Case) -> Case {
    case.file(
        "srv/venv/lib/python3.11/site-packages/django/__init__.py",
        "VERSION = (5, 2)\n",
    )
    .file(
        "srv/venv/lib/python3.11/site-packages/django/core/__init__.py",
        "",
    )
    .file(
        "srv/venv/lib/python3.11/site-packages/django/core/wsgi.py",
        "def get_wsgi_application():\n    return lambda e, s: []\n",
    )
}

#[test]
fn import_failures_are_worded_as_cpython_words_them() {
    use Source::{File, Module};
    let venv_cfg =
        "home = /usr/local/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n";
    compare(vec![
        django_project(Case::new("parent of the project: namespace package", "srv", Module("mysite.wsgi"))),
        django_project(Case::new("far from the project", "", Module("mysite.wsgi"))),
        django_project(Case::new("inside the package", "srv/mysite/mysite", Module("mysite.wsgi"))),
        django_project(Case::new("django missing", "srv/mysite", Module("mysite.wsgi"))),
        with_django_in_venv(
            django_project(Case::new("django in the venv", "srv/mysite", Module("mysite.wsgi")))
                .file("srv/venv/pyvenv.cfg", venv_cfg)
                .virtualenv("srv/venv"),
        ),
        Case::new("module beside a namespace dir", "srv", Module("mysite.wsgi"))
            .file("srv/mysite.py", "x = 1\n")
            .file("srv/mysite/wsgi.py", "application = 1\n"),
        Case::new("package beside a module", "srv", Module("mysite.wsgi"))
            .file("srv/mysite.py", "x = 1\n")
            .file("srv/mysite/__init__.py", "")
            .file("srv/mysite/wsgi.py", "def application(e, s): pass\n"),
        Case::new("namespace across entries", "", Module("ns.two"))
            .pythonpath("a")
            .pythonpath("b")
            .file("a/ns/one.py", "x = 1\n")
            .file("b/ns/two.py", "def application(e, s): pass\n"),
        Case::new("namespace across entries, missing", "", Module("ns.three"))
            .pythonpath("a")
            .pythonpath("b")
            .file("a/ns/one.py", "x = 1\n")
            .file("b/ns/two.py", "x = 1\n"),
        Case::new("regular package later beats a portion", "", Module("pkg.only_in_a"))
            .pythonpath("a")
            .pythonpath("b")
            .file("a/pkg/only_in_a.py", "application = 1\n")
            .file("b/pkg/__init__.py", ""),
        Case::new("module earlier shadows a package later", "", Module("mysite.wsgi"))
            .pythonpath("first")
            .pythonpath("second")
            .file("first/mysite.py", "x = 1\n")
            .file("second/mysite/__init__.py", "")
            .file("second/mysite/wsgi.py", "def application(e, s): pass\n"),
        Case::new("cannot import name from a module", "srv", Module("mysite.wsgi"))
            .file("srv/mysite/__init__.py", "")
            .file("srv/mysite/views.py", "def index(): pass\n")
            .file("srv/mysite/wsgi.py", "import os\nfrom .views import (\n    index,\n    nothere,\n)\n"),
        Case::new("cannot import name from a namespace package", "srv", Module("app"))
            .file("srv/app.py", "from ns import thing\n")
            .dir("srv/ns"),
        Case::new("from a package import a submodule", "srv", Module("app"))
            .file("srv/app.py", "from pkg import sub, other\napplication = sub.f\n")
            .file("srv/pkg/__init__.py", "")
            .file("srv/pkg/sub.py", "def f(): pass\n"),
        Case::new("a submodule failing inside from-import", "srv", Module("app"))
            .file("srv/app.py", "from pkg import sub\n")
            .file("srv/pkg/__init__.py", "")
            .file("srv/pkg/sub.py", "import django\n"),
        Case::new("relative import beyond the top", "srv", Module("pkg.m"))
            .file("srv/pkg/__init__.py", "")
            .file("srv/pkg/m.py", "from .. import x\n"),
        Case::new("relative import of a missing module", "srv", Module("pkg.m"))
            .file("srv/pkg/__init__.py", "from . import m\n")
            .file("srv/pkg/m.py", "from .missing import x\n"),
        Case::new("not a package", "srv", Module("app"))
            .file("srv/app.py", "import helper.sub\n")
            .file("srv/helper.py", ""),
        Case::new("try/except fallback", "srv", Module("app"))
            .file("srv/app.py", "try:\n    import simplejson as json\nexcept ImportError:\n    import json\n\ndef application(e, s):\n    return []\n"),
        Case::new("a failing fallback", "srv", Module("app"))
            .file("srv/app.py", "try:\n    import simplejson as json\nexcept ImportError:\n    import json2\n"),
        Case::new("nested failure in a fallback", "srv", Module("app"))
            .file("srv/app.py", "import os\ntry:\n    from helper import x\nexcept ImportError as e:\n    from other import y\n")
            .file("srv/helper.py", "import json\nimport missing_one\n")
            .file("srv/other.py", "x = 1\n"),
        Case::new("circular import", "srv", Module("a"))
            .file("srv/a.py", "import os\nfrom b import y\nx = 1\n")
            .file("srv/b.py", "from a import x\ny = 2\n"),
        Case::new("raise at import", "srv", Module("app"))
            .pythonpath("srv/lib")
            .file("srv/lib/errors.py", "class ImproperlyConfigured(Exception):\n    pass\n")
            .file("srv/app.py", "import os\nfrom errors import ImproperlyConfigured\nif not os.environ.get('SECRET_KEY'):\n    raise ImproperlyConfigured(\"The SECRET_KEY setting must not be empty.\")\n"),
        Case::new("a project module shadows the stdlib", "srv", Module("app"))
            .file("srv/json.py", "raise RuntimeError('the project json.py')\n")
            .file("srv/app.py", "import os\nimport json\n"),
        Case::new("an extension for another Python", "srv", Module("app"))
            .file("srv/fast.cpython-312-x86_64-linux-gnu.so", "\x7fELF")
            .file("srv/app.py", "import fast\n"),
        Case::new("wsgi-file with a relative import", "srv", File("app.py"))
            .file("srv/app.py", "import os\nfrom . import helpers\n"),
        Case::new("wsgi-file with a nested failure", "srv", File("./deploy/app.py"))
            .file("srv/deploy/app.py", "import helper\n")
            .file("srv/helper.py", "x = 1\nimport nothere\n"),
        Case::new("wsgi-file adding to sys.path", "", File("srv/deploy/wsgi.py"))
            .file("srv/deploy/wsgi.py", "import os, sys\nsys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))\nfrom mysite.app import application\n")
            .file("srv/mysite/__init__.py", "")
            .file("srv/mysite/app.py", "def application(e, s): pass\n"),
        Case::new("callable missing", "srv", Module("app"))
            .file("srv/app.py", "def app(environ, start_response):\n    return []\n"),
        Case::new("callable is None", "srv", Module("app"))
            .file("srv/app.py", "application = None\n"),
        Case::new("another callable", "srv", Module("app"))
            .callable("app")
            .file("srv/app.py", "def app(environ, start_response):\n    return []\n"),
        Case::new("relative --pythonpath entries", "srv", Module("app"))
            .pythonpath("@./lib")
            .pythonpath("@../srv/other")
            .file("srv/lib/first.py", "import second\n")
            .file("srv/other/second.py", "raise ValueError('from a relative entry')\n")
            .file("srv/app.py", "import first\n"),
        Case::new("a match statement runs its matching case", "srv", Module("app"))
            .file("srv/app.py", "import sys\nmatch sys.platform:\n    case 'win32':\n        import windows_only\n    case 'linux' | 'darwin':\n        import posix_only\n    case _:\n        pass\n"),
        Case::new("version conditions", "srv", Module("app"))
            .file("srv/app.py", "import sys\nif sys.version_info[:2] >= (3, 12):\n    import new_thing\nelif sys.version_info >= (3, 11):\n    import tomllib\nelse:\n    import tomli as tomllib\nif sys.version_info.minor == 11: import only_311\n"),
        Case::new("module __getattr__ and __all__", "srv", Module("app"))
            .file("srv/lazy.py", "def __getattr__(name):\n    return name\n")
            .file("srv/lib.py", "__all__ = ['application']\ndef application(e, s): pass\ndef hidden(e, s): pass\n")
            .file("srv/app.py", "from lazy import anything\nfrom lib import *\n"),
        Case::new("a star import leaves out what __all__ does not list", "srv", Module("app"))
            .callable("hidden")
            .file("srv/lib.py", "__all__ = ['application']\ndef application(e, s): pass\ndef hidden(e, s): pass\n")
            .file("srv/app.py", "from lib import *\n"),
        Case::new("import a.b as c, missing", "srv", Module("app"))
            .file("srv/app.py", "'''Say import django here: a docstring.'''\nimport os; import pkg.sub as s, pkg.nope as n\n")
            .file("srv/pkg/__init__.py", "")
            .file("srv/pkg/sub.py", ""),
        Case::new("a bare raise re-raises", "srv", Module("app"))
            .file("srv/app.py", "try:\n    import nope\nexcept ImportError:\n    raise\n"),
        Case::new("carets under part of a line", "srv", Module("app"))
            .file("srv/app.py", "import os  # the usual\nx = 1; from h import a, b  # c\n")
            .file("srv/h.py", "def a(): pass\n"),
        Case::new("carets under an inline body", "srv", Module("app"))
            .file("srv/app.py", "if True: import nope  # c\n"),
        Case::new("no carets under a statement on several lines", "srv", Module("app"))
            .file("srv/app.py", "from h import (  # c\n    a,\n    b)\n")
            .file("srv/h.py", "def a(): pass\n"),
        Case::new("carets under a raise with a comment", "srv", Module("app"))
            .file("srv/app.py", "import os\nraise RuntimeError(\"x\")  # c\n"),
        Case::new("imports that do not run", "srv", Module("app"))
            .file("srv/app.py", "import sys\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import mypy_stubs\nif sys.version_info < (3, 0):\n    import py2_only\ndef application(environ, start_response):\n    import lazily\n    return []\nif __name__ == '__main__':\n    import script_only\n"),
    ]);
}

#[test]
fn sys_path_is_composed_as_a_real_virtualenv_composes_it() {
    let Some(real) = real_python() else {
        return;
    };
    let root = TempRoot::new();
    let venv = root.path("venv");
    let status = Command::new(&real.executable)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .env_clear()
        .status()
        .expect("python3 -m venv runs");
    assert!(status.success());
    std::fs::create_dir_all(root.path("work")).unwrap();
    let mut tree = FileTree::new();
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap();
    tree.add_file(venv.join("pyvenv.cfg"), cfg);
    tree.add_dir(venv.join("lib/python3.11/site-packages"));
    tree.add_dir(root.path("work"));
    let pythonpath = format!("lib:../shared:{}/abs/./x:", root.0.display());
    let process =
        Arc::new(FixedProcess::new(root.path("work")).with_env("PYTHONPATH", &pythonpath));
    let mut python = SimPython::new(
        PythonInstall::new(&real.prefix, &real.version),
        tree,
        process,
        TokioExecutor::default(),
    );
    let info = python
        .start(&InterpreterSetup {
            virtualenv: Some(venv.clone()),
            pythonpath: Vec::new(),
        })
        .unwrap();
    let output = Command::new(venv.join("bin/python"))
        .args([
            "-s",
            "-c",
            "import sys\nprint(sys.prefix)\nprint(sys.base_prefix)\nfor p in sys.path[1:]: print(p)",
        ])
        .current_dir(root.path("work"))
        .env_clear()
        .env("PYTHONPATH", &pythonpath)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = text.lines().map(str::to_string);
    assert_eq!(lines.next(), Some(info.prefix.clone()));
    assert_eq!(lines.next(), Some(info.base_prefix.clone()));
    let cpython: Vec<String> = lines.collect();
    // The model's sys.path starts with uWSGI's "."; CPython's with the -c script's "".
    assert_eq!(python.sys_path()[1..], cpython[..]);
    assert!(Path::new(&info.prefix).ends_with("venv"));
}
