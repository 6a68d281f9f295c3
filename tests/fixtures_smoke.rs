//! Checks the shared test fixtures in `tests/common`: the pinned Django virtualenv builds (or is
//! reused) and imports, a Django project can be created in a fresh directory, and the small
//! helpers give what they promise.

mod common;

use std::process::Command;

#[test]
fn django_venv_has_the_pinned_django_and_a_project_can_be_made() {
    let venv = common::django_venv();
    let output = Command::new(venv.join("bin").join("python"))
        .args(["-c", "import django; print(django.get_version())"])
        .output()
        .expect("run the virtualenv's python");
    assert!(
        output.status.success(),
        "import django failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        common::DJANGO_VERSION
    );

    // A second call (another test, another thread) reuses the same virtualenv.
    let again = std::thread::spawn(common::django_venv).join().unwrap();
    assert_eq!(again, venv);

    let parent = common::temp_dir("fixtures-smoke");
    let project = common::django_project(&parent);
    assert_eq!(project, parent.join("mysite"));
    assert!(project.join("manage.py").is_file());
    assert!(project.join("mysite").join("settings.py").is_file());
    assert!(project.join("mysite").join("wsgi.py").is_file());
}

#[test]
fn small_helpers() {
    let a = common::temp_dir("helpers");
    let b = common::temp_dir("helpers");
    assert_ne!(a, b);
    assert!(a.is_dir() && std::fs::read_dir(&a).unwrap().next().is_none());
    assert!(a.starts_with(common::target_dir().join("test-tmp")));

    let port = common::free_port();
    assert_ne!(port, 0);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the free port can be bound");

    assert!(common::wsgilab().is_file());
    assert!(common::python().is_file());
}
