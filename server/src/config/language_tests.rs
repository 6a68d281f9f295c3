//! The configuration language, construct by construct: a table of small config files, each
//! with what uWSGI 2.0.31 makes of it (its source: core/ini.c, core/config.c, core/uwsgi.c,
//! core/utils.c) and what wsgilab says; and a property test that no input makes the reader
//! panic.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::placeholders::MachineFacts;
use super::{parse_serve_args_host, ConfigHost, ConfigOutcome};

/// An in-memory machine: files under `/srv/app` (the working directory), an environment.
struct Mem {
    files: BTreeMap<PathBuf, String>,
    env: Vec<(String, String)>,
}

impl Mem {
    fn new(files: &[(&str, &str)], env: &[(&str, &str)]) -> Mem {
        Mem {
            files: files
                .iter()
                .map(|(p, t)| (Path::new("/srv/app").join(p), t.to_string()))
                .collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl ConfigHost for Mem {
    fn cwd(&self) -> PathBuf {
        PathBuf::from("/srv/app")
    }
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn is_file(&self, path: &Path) -> bool {
        self.files.contains_key(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.files.keys().any(|f| f.starts_with(path) && f != path)
    }
    fn list_dir(&self, path: &Path) -> Vec<String> {
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|f| f.strip_prefix(path).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        names.dedup();
        names
    }
    fn env_vars(&self) -> Vec<(String, String)> {
        self.env.clone()
    }
    fn facts(&self) -> MachineFacts {
        let mut f = super::fixed_facts(Path::new("/srv/app"));
        f.cpus = 4;
        f.hostname = "web1".into();
        f
    }
}

/// What a case expects.
enum Expect {
    /// These `key = value` lines, in order, among the effective options (language keys and
    /// placeholders included, as `--show-config` prints them), and no error.
    Lines(&'static [&'static str]),
    /// No error, and a warning containing this.
    Warns(&'static [&'static str], &'static str),
    /// Errors: exactly this many, the first containing this text.
    Errors(usize, &'static str),
}

struct Case {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    expect: Expect,
}

use Expect::*;

const INI: &[&str] = &["--ini", "app.ini"];

macro_rules! ini {
    ($name:expr, $text:expr, $expect:expr) => {
        Case {
            name: $name,
            files: &[("app.ini", $text)],
            args: INI,
            env: &[],
            expect: $expect,
        }
    };
    ($name:expr, $text:expr, env $env:expr, $expect:expr) => {
        Case {
            name: $name,
            files: &[("app.ini", $text)],
            args: INI,
            env: $env,
            expect: $expect,
        }
    };
}

const CASES: &[Case] = &[
    // ----- ini (core/ini.c) -----
    ini!("a bare key is the value \"\" (true for a flag)", "[uwsgi]\nmaster\n", Lines(&["master ="])),
    ini!("no inline comments: ';' is part of the value", "[uwsgi]\nchdir = /srv ; x\n", Lines(&["chdir = /srv ; x"])),
    ini!("a number is read as strtol reads it, with a warning", "[uwsgi]\nmax-requests = 1000   # c\n",
        Warns(&["max-requests = 1000   # c"], "'# c' after the number is ignored")),
    ini!("repeated keys add values in order", "[uwsgi]\nsocket = :1\nsocket = :2\npythonpath = /a\npythonpath = /b\n",
        Lines(&["socket = :1", "socket = :2", "pythonpath = /a", "pythonpath = /b"])),
    ini!("spaces around key and value are trimmed", "[uwsgi]\n   harakiri   =   30   \n", Lines(&["harakiri = 30"])),
    ini!("the first '=' splits", "[uwsgi]\nx = A=b=c\npythonpath = %(x)\n", Lines(&["x = A=b=c", "pythonpath = A=b=c"])),
    ini!("CRLF line endings", "[uwsgi]\r\nprocesses = 2\r\nmaster = true\r\n", Lines(&["processes = 2", "master = true"])),
    ini!("a UTF-8 byte order mark is skipped", "\u{feff}[uwsgi]\nprocesses = 2\n", Lines(&["processes = 2"])),
    ini!("the header loses its last character: [uwsgi is section 'uwsg'", "[uwsgi\nprocesses = 2\n",
        Warns(&[], "can't find section \"uwsgi\"")),
    ini!("only [uwsgi] is read", "[app]\nprocesses = 9\n[uwsgi]\nthreads = 2\n[x]\nlisten = 5\n", Lines(&["threads = 2"])),
    Case { name: "FILE:section", files: &[("app.ini", "[uwsgi]\nprocesses = 1\n[dev]\nprocesses = 3\n")],
        args: &["--ini", "app.ini:dev"], env: &[], expect: Lines(&["processes = 3"]) },
    ini!("ini = :section reads another section of the same file", "[uwsgi]\nini = :base\nprocesses = 2\n[base]\nchdir = /srv\n",
        Lines(&["ini = :base", "chdir = /srv", "processes = 2"])),
    Case { name: "include is read where it stands", files: &[("app.ini", "[uwsgi]\nprocesses = 2\ninclude = b.ini\n"), ("b.ini", "[uwsgi]\nprocesses = 5\n")],
        args: INI, env: &[], expect: Lines(&["processes = 2", "include = b.ini", "processes = 5"]) },
    Case { name: "inherit is read after everything else", files: &[("app.ini", "[uwsgi]\ninherit = b.ini\nprocesses = 2\n"), ("b.ini", "[uwsgi]\nprocesses = 5\n")],
        args: INI, env: &[], expect: Lines(&["inherit = b.ini", "processes = 2", "processes = 5"]) },
    ini!("a file including itself is an error", "[uwsgi]\nini = app.ini\n", Errors(1, "includes itself")),
    ini!("a missing included file names the line", "[uwsgi]\n\ninclude = nope.ini\n", Errors(1, "app.ini:3: 'include = nope.ini': ini file 'nope.ini' not found")),
    // ----- placeholders (core/config.c, core/utils.c) -----
    ini!("a placeholder may be defined after its use", "[uwsgi]\nchdir = %(base)/app\nbase = /srv\n", Lines(&["chdir = /srv/app", "base = /srv"])),
    ini!("the first value of a placeholder is used", "[uwsgi]\nbase = /a\nbase = /b\nchdir = %(base)\n", Lines(&["chdir = /a"])),
    ini!("arithmetic", "[uwsgi]\nn = 3\nprocesses = %(n * 2 + 1)\nthreads = %(n ++)\nharakiri = %(n - 1)\nlimit-post = %(9 / n)\n",
        Lines(&["processes = 7", "threads = 4", "harakiri = 2", "limit-post = 3"])),
    ini!("concatenation", "[uwsgi]\na = /srv\nb = site\nchdir = %(a b)\n", Lines(&["chdir = /srvsite"])),
    ini!("an option's value is a placeholder too", "[uwsgi]\nsocket = :3031\npythonpath = %(socket)\n", Lines(&["pythonpath = :3031"])),
    ini!("an undefined placeholder in an option wsgilab uses is an error naming it", "[uwsgi]\nchdir = %(base)/app\n", Errors(1, "'base' is not defined")),
    ini!("an undefined %(...) stays text where uWSGI wants it (log-format)", "[uwsgi]\nlog-format = %(addr) %(uri)\n",
        Warns(&["log-format = %(addr) %(uri)"], "'log-format'")),
    ini!("$(ENV)", "[uwsgi]\nhttp-socket = :$(PORT)\n", env &[("PORT", "8080")], Lines(&["http-socket = :8080"])),
    ini!("an unset $(ENV) is an error in a socket", "[uwsgi]\nhttp-socket = :$(PORT)\n", Errors(1, "the environment variable PORT is not set")),
    Case { name: "@(FILE) is the file's content without its last newline", files: &[("app.ini", "[uwsgi]\nchdir = @(dir.txt)\n"), ("dir.txt", "/srv/site\n")],
        args: INI, env: &[], expect: Lines(&["chdir = /srv/site"]) },
    ini!("@(FILE) missing is an error", "[uwsgi]\nchdir = @(nope.txt)\n", Errors(1, "cannot read the file /srv/app/nope.txt")),
    Case { name: "magic variables", files: &[("conf/site.ini", "[uwsgi]\nchdir = %d\nmodule = %n.wsgi\npythonpath = %s|%e|%c|%p|%0|%1|%k|%h|%V\n")],
        args: &["--ini", "conf/site.ini"], env: &[],
        expect: Lines(&["chdir = /srv/app/conf/", "module = site.wsgi", "pythonpath = site.ini|ini|conf|/srv/app/conf/site.ini|srv|app|4|web1|2.0.31"]) },
    ini!("%% is a percent sign; an unknown %z is nothing, with a warning", "[uwsgi]\npythonpath = 100%%|%z|\n",
        Warns(&["pythonpath = 100%||"], "'%z' is not one of uWSGI's magic variables")),
    ini!("a placeholder that expands into itself is an error", "[uwsgi]\na = x%(a)\nchdir = %(a)\n", Errors(1, "app.ini:3: 'chdir = %(a)': '%(a)' keeps expanding into itself")),
    ini!("immediate options are not expanded (uWSGI reads listen at once)", "[uwsgi]\nn = 64\nlisten = %(n)\n", Errors(1, "still holds '%(n)'")),
    // ----- logic (core/config.c) -----
    ini!("if-env with the variable set", "[uwsgi]\nif-env = PORT\nhttp-socket = :%(_)\nendif =\n", env &[("PORT", "9000")], Lines(&["http-socket = :9000"])),
    ini!("if-env with the variable unset", "[uwsgi]\nif-env = PORT\nhttp-socket = :%(_)\nendif =\nprocesses = 2\n", Lines(&["if-env = PORT", "endif =", "processes = 2"])),
    ini!("if-not-env", "[uwsgi]\nif-not-env = PORT\nhttp-socket = :8000\nendif =\n", Lines(&["http-socket = :8000"])),
    ini!("a failed if-not-env leaves %(_) as it is (uWSGI substitutes NULL)", "[uwsgi]\nif-not-env = NOPE\nx = %(_)\nendif =\n", Lines(&["x = %(_)"])),
    ini!("if-env NAME=VALUE compares", "[uwsgi]\nif-env = MODE=prod\nprocesses = 8\nendif =\nif-env = MODE=dev\nprocesses = 1\nend =\n",
        env &[("MODE", "dev")], Lines(&["if-env = MODE=prod", "endif =", "if-env = MODE=dev", "processes = 1", "end ="])),
    Case { name: "if-exists, if-not-exists, if-file, if-dir", files: &[("app.ini", "[uwsgi]\nif-exists = app.py\nwsgi-file = %(_)\nendif =\nif-not-exists = nope\nchdir = /x\nendif =\nif-file = static\nthreads = 9\nendif =\nif-dir = static\nprocesses = 3\nendif =\n"), ("app.py", ""), ("static/a.css", "")],
        args: INI, env: &[], expect: Lines(&["wsgi-file = app.py", "chdir = /x", "processes = 3"]) },
    ini!("if-opt and if-not-opt see the options so far", "[uwsgi]\nsocket = :1\nif-opt = socket\nprocesses = 2\nendif =\nif-not-opt = http\nthreads = 2\nendif =\nif-opt = socket=:2\nlisten = 9\nendif =\n",
        Lines(&["processes = 2", "threads = 2", "if-opt = socket=:2", "endif ="])),
    ini!("for", "[uwsgi]\nfor = /a /b\npythonpath = %(_)/lib\nendfor =\n", Lines(&["pythonpath = /a/lib", "pythonpath = /b/lib"])),
    Case { name: "for-glob: sorted, the pattern itself when nothing matches", files: &[("app.ini", "[uwsgi]\nfor-glob = libs/*\npythonpath = %(_)\nendfor =\nfor-glob = none/*\nchdir = %(_)\nendfor =\n"), ("libs/b/x", ""), ("libs/a/x", "")],
        args: INI, env: &[], expect: Lines(&["pythonpath = libs/a/", "pythonpath = libs/b/", "chdir = none/*"]) },
    Case { name: "for-readline", files: &[("app.ini", "[uwsgi]\nfor-readline = paths.txt\npythonpath = %(_)\nendfor =\n"), ("paths.txt", "/a\n/b\n")],
        args: INI, env: &[], expect: Lines(&["pythonpath = /a", "pythonpath = /b"]) },
    ini!("for-times", "[uwsgi]\nfor-times = 2\npythonpath = /p%(_)\nendfor =\n", Lines(&["pythonpath = /p1", "pythonpath = /p2"])),
    ini!("blocks do not nest", "[uwsgi]\nif-env = A\nif-env = B\nendif =\nendif =\n", env &[("A", "1")], Errors(1, "recursive logic")),
    ini!("a block left open is said", "[uwsgi]\nif-not-env = A\nprocesses = 2\n", Warns(&["processes = 2"], "has no matching 'endif'")),
    // ----- formats and sources -----
    Case { name: "yaml: comments anywhere, quotes kept", files: &[("app.yml", "uwsgi:\n  socket: :3031 # c\n  module: 'app'\n  master: true\n")],
        args: &["--yaml", "app.yml"], env: &[], expect: Lines(&["socket = :3031", "module = 'app'", "master = true"]) },
    Case { name: "json: true is 1, arrays repeat", files: &[("app.json", "{\"uwsgi\": {\"socket\": [\":1\", \":2\"], \"master\": true, \"processes\": 4}}")],
        args: &["-j", "app.json"], env: &[], expect: Lines(&["socket = :1", "socket = :2", "master = 1", "processes = 4"]) },
    Case { name: "xml", files: &[("app.xml", "<uwsgi><socket>:3031</socket><master/></uwsgi>")],
        args: &["-x", "app.xml"], env: &[], expect: Lines(&["socket = :3031", "master = 1"]) },
    Case { name: "a lone file by its extension, read after every option", files: &[("app.yaml", "uwsgi:\n  processes: 4\n")],
        args: &["app.yaml", "--processes", "2"], env: &[], expect: Lines(&["processes = 2", "processes = 4"]) },
    Case { name: "UWSGI_* variables come first", files: &[],
        args: &["--processes", "2"], env: &[("UWSGI_PROCESSES", "3"), ("UWSGI_HTTP_SOCKET", ":8000"), ("UWSGI_RELOADS", "1")],
        expect: Lines(&["processes = 3", "http-socket = :8000", "processes = 2"]) },
    Case { name: "a bad UWSGI_* value names the variable", files: &[], args: &[], env: &[("UWSGI_PROCESSES", "many")],
        expect: Errors(1, "environment: 'UWSGI_PROCESSES=many': invalid value 'many' for 'processes'") },
    Case { name: "UWSGI_INI names the file", files: &[("app.ini", "[uwsgi]\nmaster = true\n")],
        args: &[], env: &[("UWSGI_INI", "app.ini")], expect: Lines(&["ini = app.ini", "master = true"]) },
    Case { name: "a lone app.py is the wsgi-file", files: &[], args: &["app.py"], env: &[], expect: Lines(&["wsgi-file = app.py"]) },
    // ----- unknown keys, policies, errors -----
    ini!("unknown keys are placeholders: one warning lists the unused", "[uwsgi]\nvaccum = true\nprocesses = 2\n",
        Warns(&["vaccum = true"], "'vaccum' (app.ini:2, did you mean vacuum?)")),
    ini!("strict makes them errors", "[uwsgi]\nstrict = true\nvaccum = true\nfoo = 1\n", Errors(2, "strict mode allows no placeholders (did you mean vacuum?)")),
    ini!("uid is refused, never ignored", "[uwsgi]\nuid = www-data\n", Errors(1, "ignoring it would run the app as the user that started it (often root)")),
    ini!("memory-report is accepted with one warning", "[uwsgi]\nmemory-report = true\nmemory-report = true\n",
        Warns(&["memory-report = true"], "'memory-report' (app.ini:2) is accepted for uWSGI compatibility and ignored")),
    ini!("every error at once", "[uwsgi]\nprocesses = abc\nuid = x\nchdir = %(nope)\nhttp-socket = :99999\nprotocol = spdy\ndaemonize = /tmp/log\n",
        Errors(6, "app.ini:2: 'processes = abc': invalid value 'abc' for 'processes': expected a whole number")),
];

fn run(case: &Case) -> (Vec<String>, Vec<String>, Vec<String>) {
    let host = Mem::new(case.files, case.env);
    let mut args: Vec<OsString> = vec!["--show-config".into()];
    args.extend(case.args.iter().map(OsString::from));
    let (text, errors) = match parse_serve_args_host(&args, &host) {
        Ok(ConfigOutcome::ShowConfig(t)) => (t, Vec::new()),
        Err(e) => (
            e.show_config().unwrap_or_default().to_string(),
            e.lines().to_vec(),
        ),
        other => panic!("{}: {other:?}", case.name),
    };
    let lines: Vec<String> = text
        .lines()
        .take_while(|l| !l.starts_with(";end of configuration"))
        .filter(|l| !l.starts_with(';') && *l != "[uwsgi]")
        .map(|l| {
            l.rsplit_once("   ; ")
                .map_or(l, |(v, _)| v)
                .trim_end()
                .to_string()
        })
        .collect();
    let warnings: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("; warning: "))
        .map(str::to_string)
        .collect();
    (lines, warnings, errors)
}

/// `want` appear in `lines` in this order (others may be between them).
fn in_order(lines: &[String], want: &[&str]) -> bool {
    let mut it = lines.iter();
    want.iter().all(|w| it.any(|l| l == w))
}

#[test]
fn table_of_small_configs() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for case in CASES {
        let (lines, warnings, errors) = run(case);
        let ok = match &case.expect {
            Lines(want) => errors.is_empty() && in_order(&lines, want),
            Warns(want, warning) => {
                in_order(&lines, want) && warnings.iter().any(|w| w.contains(warning))
            }
            Errors(n, first) => errors.len() == *n && errors[0].contains(first),
        };
        if !ok {
            failures.push(format!(
                "{}\n  lines: {lines:#?}\n  warnings: {warnings:#?}\n  errors: {errors:#?}",
                case.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn suggestions_only_where_the_meaning_is_close() {
    use super::options::suggest;
    assert_eq!(suggest("htp-socket"), Some("http-socket"));
    assert_eq!(suggest("http_socket"), Some("http-socket"));
    assert_eq!(suggest("proceses"), Some("processes"));
    assert_eq!(suggest("vaccum"), Some("vacuum"));
    assert_eq!(suggest("max-worker-lifetme"), Some("max-worker-lifetime"));
    // A word that is another option's word is not a typo: min is not max.
    assert_eq!(suggest("min-worker-lifetme"), Some("min-worker-lifetime"));
    assert_eq!(suggest("min-requests"), None);
    assert_eq!(suggest("worker-max-lifetime"), None);
    assert_eq!(suggest("frobnicate"), None);
    assert_eq!(suggest("environment"), None);
}

#[test]
fn every_implemented_option_is_a_clap_argument_and_in_the_table() {
    use super::options::{lookup, Policy, OPTIONS};
    let cmd = super::cli::serve_command();
    for o in OPTIONS {
        if o.policy == Policy::Implemented {
            assert!(
                super::cli::find_long(&cmd, o.name).is_some(),
                "{} is marked implemented but clap does not know it",
                o.name
            );
        }
    }
    for a in cmd.get_arguments() {
        for name in a
            .get_long()
            .into_iter()
            .chain(a.get_all_aliases().unwrap_or_default())
        {
            let o = lookup(name).unwrap_or_else(|| panic!("--{name} is not a uWSGI option"));
            assert!(
                !matches!(o.policy, Policy::Refuse(_)),
                "--{name} is a clap argument but the table refuses it"
            );
        }
    }
    assert!(OPTIONS.len() > 1000, "uWSGI has over a thousand options");
}

/// Lines built from the language's pieces, so the property test reaches the interesting paths
/// (blocks, references, sections, includes) rather than only random bytes.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[uwsgi]".to_string()),
        Just("[uwsgi".to_string()),
        Just("[".to_string()),
        Just("endif =".to_string()),
        Just("endfor".to_string()),
        Just("ini = :x".to_string()),
        Just("ini = app.ini".to_string()),
        Just("include = b.ini".to_string()),
        Just("inherit = app.ini".to_string()),
        Just("strict".to_string()),
        "[a-z-]{1,12} = [ -~]{0,20}",
        "(if-env|if-not-env|if-opt|for|for-glob|for-times|for-readline|if-exists) = [A-Za-z0-9/*.=_ ]{0,10}",
        "(socket|processes|chdir|listen|harakiri|x) = [%$@()a-z0-9 +*/:_-]{0,16}",
        "[^\n]{0,30}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_input_makes_the_reader_panic(
        lines in proptest::collection::vec(piece(), 0..25),
        other in "[^\u{0}]{0,200}",
        args in proptest::collection::vec("(-[-a-zA-Z]{0,12}(=[ -~]{0,8})?|[ -~]{0,10}|app.ini|b.yml)", 0..6),
        env in proptest::collection::vec(("UWSGI_[A-Z_]{1,10}", "[ -~]{0,10}"), 0..3),
    ) {
        let text = lines.join("\n");
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let host = Mem::new(&[("app.ini", &text), ("b.ini", &other), ("b.yml", &text), ("c.json", &other)], &env);
        let mut argv: Vec<OsString> = vec!["--ini".into(), "app.ini".into()];
        argv.extend(args.iter().map(OsString::from));
        // Any outcome is fine; a panic is not. Errors are one line each.
        if let Err(e) = parse_serve_args_host(&argv, &host) {
            prop_assert!(e.lines().iter().all(|l| !l.contains('\n')));
        }
        for format in ["--yaml", "--json", "--xml"] {
            let argv: Vec<OsString> = vec![format.into(), "b.ini".into()];
            let _ = parse_serve_args_host(&argv, &host);
        }
    }
}

#[test]
fn the_readme_shows_the_policy_table() {
    let readme = include_str!("../../../README.md");
    let table = super::options::policy_table_markdown();
    assert!(
        readme.contains(&table),
        "README.md's option table is out of date; paste this:\n{table}"
    );
}
