//! wsgilab reads uWSGI's configuration language as uWSGI 2.0.31 does: the same files, command
//! lines and environments given to the real `uwsgi --show-config` and to
//! `wsgilab serve --show-config` must give the same options, values and order.
//!
//! uWSGI's `--show-config` prints every option and placeholder it holds once its config is read
//! and expanded (its `exported_opts`), as an ini section. wsgilab prints the same section with
//! the origin of each line as a trailing comment; the comparison strips that comment. The real
//! uWSGI is the one `bench/run` pins (built from source once into `target/test-cache/`, a minute
//! or two, then reused).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// One configuration to compare: files (relative to a fresh directory, which is also the
/// working directory), the arguments after `uwsgi` / `wsgilab serve`, and the environment.
struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// When the pip-built uWSGI lacks the feature (its JSON reader needs jansson, absent from
    /// the build `pip install uWSGI==2.0.31` makes here), what it prints with the feature,
    /// from its source (core/json.c), instead of running it.
    expected: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "ini basics: bare keys, comments, repeated keys, '=' in values, numbers kept as text",
        files: &[(
            "app.ini",
            "; comment\n# comment\n[uwsgi]\nmaster\nsocket = 127.0.0.1:3031\nsocket=127.0.0.1:3032\n\
             env = A=b=c\nmax-requests = 1000   # not a comment for uWSGI\n  harakiri   =  30  \n\
             vacuum = true ; neither is this\n[other]\nprocesses = 9\n",
        )],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "sections: FILE:section, ini = :section of the same file",
        files: &[(
            "app.ini",
            "[uwsgi]\nprocesses = 1\n[dev]\nini = :base\nprocesses = 2\n[base]\nchdir = /srv\nthreads = 4\n",
        )],
        args: &["--ini", "app.ini:dev"],
        env: &[],
        expected: None,
    },
    Case {
        name: "include is read in place, inherit after everything",
        files: &[
            ("app.ini", "[uwsgi]\ninherit = base.ini\nprocesses = 2\ninclude = more.ini\nthreads = 2\n"),
            ("base.ini", "[uwsgi]\nprocesses = 8\nmaster = true\n"),
            ("more.ini", "[uwsgi]\nlisten = 50\n"),
        ],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "placeholders, first value wins, arithmetic and concatenation",
        files: &[(
            "app.ini",
            "[uwsgi]\nbase = /srv\nbase = /other\nname = site\nchdir = %(base)/%(name)\n\
             workers = 3\nprocesses = %(workers + 1)\nthreads = %(workers * 2 - 1)\n\
             listen = %(workers 0)\nlimit-post = %(workers ++)\npythonpath = %(base name)\n\
             x = %(10 / 0)\n",
        )],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "magic variables of the file",
        files: &[(
            "conf/site.ini",
            "[uwsgi]\nchdir = %d\nmodule = %n.wsgi\npythonpath = %s|%e|%c|%x|%o\nenv = P=%p\n\
             env = Z=%z|%%|100%%\nenv = U=%u|%g\nenv = K=%k|%V\n",
        )],
        args: &["--ini", "conf/site.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "if-env, if-not-env, NAME=VALUE, %(_)",
        files: &[(
            "app.ini",
            "[uwsgi]\nif-env = PORT\nhttp-socket = :%(_)\nendif =\nif-not-env = PORT\n\
             http-socket = :8000\nendif =\nif-env = MODE=prod\nprocesses = 8\nendif =\n\
             if-not-env = MODE=prod\nprocesses = 2\nendif =\nif-not-env = NOPE\nenv = X=%(_)\nend =\n",
        )],
        args: &["--ini", "app.ini"],
        env: &[("PORT", "9090"), ("MODE", "dev")],
        expected: None,
    },
    Case {
        name: "if-exists, if-file, if-dir and their negations",
        files: &[
            ("app.ini", "[uwsgi]\nif-exists = app.py\nwsgi-file = %(_)\nendif =\nif-file = static\n\
                         env = A=1\nendif =\nif-dir = static\nenv = B=%(_)\nendif =\n\
                         if-not-exists = nope.py\nenv = C=%(_)\nendif =\nif-not-dir = app.py\nenv = D=1\nendif =\n\
                         if-not-file = app.py\nenv = E=1\nendif =\n"),
            ("app.py", ""),
            ("static/x.css", ""),
        ],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "for, for-times, for-readline, for-glob",
        files: &[
            ("app.ini", "[uwsgi]\nfor = a b  c\npythonpath = /lib/%(_)\nendfor =\nfor-times = 3\n\
                         env = N%(_)=%(_)\nendfor =\nfor-readline = hosts.txt\nenv = H=%(_)\nendfor =\n\
                         for-glob = conf/*.ini\nenv = G=%(_)\nendfor =\n"),
            ("hosts.txt", "one\ntwo\n"),
            ("conf/b.ini", ""),
            ("conf/a.ini", ""),
            ("conf/c.txt", ""),
        ],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "if-opt and if-not-opt look at the options given so far",
        files: &[(
            "app.ini",
            "[uwsgi]\nsocket = :3031\nif-opt = socket\nenv = S=%(_)\nendif =\nif-not-opt = http\n\
             http-socket = :8000\nendif =\nif-opt = socket=:3031\nenv = T=1\nendif =\n",
        )],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "$(ENV) and @(FILE)",
        files: &[
            ("app.ini", "[uwsgi]\nhttp-socket = :$(PORT)\nchdir = @(dir.txt)\nenv = H=$(HOME_DIR)/x\n"),
            ("dir.txt", "/srv/site\n"),
        ],
        args: &["--ini", "app.ini"],
        env: &[("PORT", "8123"), ("HOME_DIR", "/home/me")],
        expected: None,
    },
    Case {
        name: "yaml: uWSGI's own reader (comments anywhere, quotes kept)",
        files: &[(
            "app.yml",
            "# c\nuwsgi:\n  socket: :3031 # comment\n  module: \"app:app\"\n  master: true\n  processes: 4\nother:\n  threads: 9\n",
        )],
        args: &["--yaml", "app.yml"],
        env: &[],
        expected: None,
    },
    Case {
        name: "json: true is 1, arrays repeat the key",
        files: &[(
            "app.json",
            "{\"uwsgi\": {\"socket\": [\":3031\", \":3032\"], \"master\": true, \"vacuum\": false, \"processes\": 4, \"module\": \"app\"}}",
        )],
        args: &["--json", "app.json"],
        env: &[],
        expected: Some(
            "show-config = true\njson = app.json\nsocket = :3031\nsocket = :3032\nmaster = 1\n\
             vacuum = 0\nprocesses = 4\nmodule = app",
        ),
    },
    Case {
        name: "UWSGI_* environment first, then the command line in order, lone files last",
        files: &[("app.ini", "[uwsgi]\nprocesses = 4\nmaster = true\n")],
        args: &["--threads", "2", "app.ini", "--processes", "2"],
        env: &[("UWSGI_PROCESSES", "3"), ("UWSGI_HTTP_SOCKET", ":8001")],
        expected: None,
    },
    Case {
        name: "set-placeholder, and a placeholder named after an option",
        files: &[(
            "app.ini",
            "[uwsgi]\nset-placeholder = app=mysite\nmodule = %(app).wsgi\nsocket = :1\nlisten = 10\n\
             pythonpath = %(socket)-%(listen)\n",
        )],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
    Case {
        name: "xml: child elements are options, an empty one is 1",
        files: &[(
            "app.xml",
            "<?xml version=\"1.0\"?>\n<!-- c -->\n<uwsgi>\n  <socket>:3031</socket>\n  <master/>\n  \
             <module>app</module>\n  <processes>4</processes>\n</uwsgi>\n",
        )],
        args: &["--xml", "app.xml"],
        env: &[],
        expected: None,
    },
    Case {
        name: "immediate options (listen, plugins) are not expanded",
        files: &[(
            "app.ini",
            "[uwsgi]\nn = 64\nlisten = %(n)\nthreads = %(n)\nplugins = %(n)\n",
        )],
        args: &["--ini", "app.ini"],
        env: &[],
        expected: None,
    },
];

/// The `key = value` lines of a `--show-config` section, in order (wsgilab's origin comments
/// taken off).
fn section(text: &str, wsgilab: bool) -> Option<Vec<String>> {
    let start = text.find(";uWSGI instance configuration")?;
    let rest = &text[start..];
    let end = rest.find(";end of configuration")?;
    Some(
        rest[..end]
            .lines()
            .skip(1)
            .filter(|l| *l != "[uwsgi]")
            .map(|l| {
                let l = if wsgilab {
                    l.rsplit_once("   ; ").map_or(l, |(v, _)| v)
                } else {
                    l
                };
                l.trim_end().to_string()
            })
            .collect(),
    )
}

/// Runs the real uWSGI until it has printed its configuration, then stops it.
fn uwsgi_show_config(uwsgi: &Path, dir: &Path, case: &Case) -> String {
    let mut child = Command::new(uwsgi)
        .arg("--show-config")
        .args(case.args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(case.env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run uwsgi");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let done = line.starts_with(";end of configuration");
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let mut out = String::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        out.push_str(&line);
        out.push('\n');
        if line.starts_with(";end of configuration") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    out
}

fn wsgilab_show_config(dir: &Path, case: &Case) -> (String, String) {
    let out = Command::new(common::wsgilab())
        .args(["serve", "--show-config"])
        .args(case.args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(case.env.iter().copied())
        .output()
        .expect("run wsgilab");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn show_config_matches_real_uwsgi() {
    let venv = common::tool_venv(&["uWSGI==2.0.31"]);
    let uwsgi = venv.join("bin").join("uwsgi");
    let mut failures = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let dir = common::temp_dir(&format!("uwsgi-show-config-{i}"));
        for (path, text) in case.files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
        }
        let theirs = match case.expected {
            Some(text) => {
                format!(";uWSGI instance configuration\n[uwsgi]\n{text}\n;end of configuration\n")
            }
            None => uwsgi_show_config(&uwsgi, &dir, case),
        };
        let (ours, our_err) = wsgilab_show_config(&dir, case);
        let Some(theirs_lines) = section(&theirs, false) else {
            failures.push(format!(
                "{}: uWSGI printed no configuration:\n{theirs}",
                case.name
            ));
            continue;
        };
        let Some(ours_lines) = section(&ours, true) else {
            failures.push(format!(
                "{}: wsgilab printed no configuration:\n{ours}\n{our_err}",
                case.name
            ));
            continue;
        };
        if theirs_lines != ours_lines {
            failures.push(format!(
                "{}:\n--- uWSGI 2.0.31\n{}\n--- wsgilab\n{}\n",
                case.name,
                theirs_lines.join("\n"),
                ours_lines.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
