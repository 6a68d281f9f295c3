//! A real Django project (`django-admin startproject`) in a real virtualenv with pinned Django,
//! served by the real binary: the welcome page, and the two classic failures with their hints.

mod common;

use common::server::Server;

#[test]
fn django_welcome_page_from_the_project_directory_with_virtualenv() {
    let venv = common::django_venv();
    let project = common::django_project(&common::temp_dir("django-ok"));
    let server = Server::start(
        &project,
        &[
            "--module",
            "mysite.wsgi",
            "--virtualenv",
            venv.to_str().unwrap(),
        ],
    );
    let response = server.get("/");
    assert_eq!(
        response.status,
        200,
        "{}\n{}",
        response.text(),
        server.log()
    );
    assert!(
        response.text().contains("The install worked successfully"),
        "{}",
        response.text()
    );
    let log = server.wait_for_log("GET / =>");
    assert!(
        log.contains(&format!("Set PythonHome to {}", venv.display())),
        "{log}"
    );
    assert!(log.contains("WSGI app 0 (mountpoint='') ready in"), "{log}");
}

#[test]
fn started_from_the_parent_directory_the_hint_names_chdir() {
    let venv = common::django_venv();
    let parent = common::temp_dir("django-parent");
    let project = common::django_project(&parent);
    let server = Server::start(
        &parent,
        &[
            "--module",
            "mysite.wsgi",
            "--virtualenv",
            venv.to_str().unwrap(),
        ],
    );
    assert_eq!(server.get("/").status, 500);
    let log = server.wait_for_log("GET / =>");
    // `mysite/` (the project directory, no __init__.py) imports as a namespace package, so
    // CPython's complaint is about `mysite.wsgi`, not `mysite`.
    assert!(
        log.contains("ModuleNotFoundError: No module named 'mysite.wsgi'"),
        "{log}"
    );
    assert!(log.contains("namespace package"), "{log}");
    assert!(
        log.contains("unable to load app 0 (mountpoint='') (callable not found or import error)"),
        "{log}"
    );
    assert!(
        log.contains("hint: Python looked for 'mysite.wsgi' in sys.path: '.'"),
        "{log}"
    );
    assert!(
        log.contains(&format!("pass --chdir {}", project.display())),
        "{log}"
    );
}

#[test]
fn started_without_the_virtualenv_the_hint_names_it() {
    let venv = common::django_venv();
    let root = common::temp_dir("django-novenv");
    let project = common::django_project(&root);
    // A virtualenv beside the project, as people make them: `python -m venv venv`.
    let local_venv = project.join("venv");
    std::os::unix::fs::symlink(&venv, &local_venv).unwrap();
    let server = Server::start(&project, &["--module", "mysite.wsgi"]);
    assert_eq!(server.get("/").status, 500);
    let log = server.wait_for_log("GET / =>");
    assert!(
        log.contains("ModuleNotFoundError: No module named 'django'"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "hint: 'django' is installed in the virtualenv {}",
            local_venv.display()
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("pass --virtualenv {}", local_venv.display())),
        "{log}"
    );
}

#[test]
fn a_virtualenv_of_another_python_version_is_named() {
    let root = common::temp_dir("venv-other-version");
    let venv = root.join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::write(
        venv.join("pyvenv.cfg"),
        "home = /usr/local/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n",
    )
    .unwrap();
    let port = common::free_port();
    let (status, log) = common::server::run_to_exit(
        &root,
        &[
            "--http-socket",
            &format!("127.0.0.1:{port}"),
            "--module",
            "app",
            "--virtualenv",
            "venv",
        ],
    );
    assert_eq!(status, Some(1), "{log}");
    assert!(
        log.contains("ModuleNotFoundError: No module named 'encodings'"),
        "{log}"
    );
    assert!(
        log.contains("was made by Python 3.12.1, but wsgilab embeds Python 3.11"),
        "{log}"
    );
}
