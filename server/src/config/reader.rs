//! The reader: every source of options — `UWSGI_*` environment variables, the command line,
//! config files in any format, the logic blocks inside them — turned into one ordered list of
//! [`Entry`]s, each knowing where it came from, then expanded (placeholders).
//!
//! It follows uWSGI 2.0's `uwsgi_setup`: the environment first (`parse_sys_envs`), then the
//! command line in order, where a config file option (`--ini`, `--yaml`, `include`, ...) reads
//! its file at once so its options take its place in the order (uWSGI's `UWSGI_OPT_IMMEDIATE`);
//! lone files after all options (getopt moves them to the end); `inherit` after everything
//! (it is not immediate). For a single-valued option the last one wins, so a file named after
//! `--processes 2` overrides it, exactly as uWSGI does. Then the passes of
//! [`super::placeholders`].
//!
//! The reader never stops at the first problem: it records every error with its origin and
//! goes on, so a file with six mistakes is reported in one go.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::formats::Format;
use super::logic::{self, Logic, LogicContext};
use super::options::{self, Arg, Policy};
use super::placeholders::{self, MachineFacts, MagicTable};

/// What the reader may ask of the machine it runs on. The real server passes the file system
/// and its environment ([`RealHost`]); the lab passes a scenario's files and environment.
pub trait ConfigHost {
    /// The directory relative paths are taken from.
    fn cwd(&self) -> PathBuf;
    fn read_file(&self, path: &Path) -> io::Result<String>;
    fn is_file(&self, path: &Path) -> bool;
    fn is_dir(&self, path: &Path) -> bool;
    /// The names in a directory (for `for-glob`).
    fn list_dir(&self, path: &Path) -> Vec<String>;
    /// The environment, in order.
    fn env_vars(&self) -> Vec<(String, String)>;
    /// What the magic variables `%h`, `%k`, `%u`, ... give.
    fn facts(&self) -> MachineFacts;
}

/// The real machine: the file system, the process environment, the host name.
pub struct RealHost;

impl ConfigHost for RealHost {
    fn cwd(&self) -> PathBuf {
        std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    }
    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn is_file(&self, path: &Path) -> bool {
        path.is_file()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn list_dir(&self, path: &Path) -> Vec<String> {
        std::fs::read_dir(path)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
    fn env_vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect()
    }
    fn facts(&self) -> MachineFacts {
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| uid.to_string());
        let group = nix::unistd::Group::from_gid(gid)
            .ok()
            .flatten()
            .map(|g| g.name)
            .unwrap_or_else(|| gid.to_string());
        MachineFacts {
            cwd: self.cwd().display().to_string(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            uid: uid.as_raw(),
            user,
            gid: gid.as_raw(),
            group,
            now_micros: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            binary: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Where an option came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file: its name as given, the line, and the line's text.
    File {
        file: String,
        line: usize,
        text: String,
    },
    /// An environment variable `UWSGI_...=...`.
    Env { var: String },
    /// The command line, as typed (`--processes 4`).
    CommandLine { arg: String },
    /// Produced by a logic block (`for`, `if-env`) opened at this origin.
    Logic {
        block: String,
        at: Box<Origin>,
        inner: Box<Origin>,
    },
}

impl Origin {
    /// The file position or source, short: `app.ini:3`, `environment UWSGI_PROCESSES`,
    /// `command line`.
    pub fn place(&self) -> String {
        match self {
            Origin::File { file, line, .. } => format!("{file}:{line}"),
            Origin::Env { var } => {
                format!(
                    "environment {}",
                    var.split_once('=').map_or(var.as_str(), |(k, _)| k)
                )
            }
            Origin::CommandLine { .. } => "command line".to_string(),
            Origin::Logic { inner, .. } => inner.place(),
        }
    }

    /// The text the user wrote there.
    pub fn text(&self) -> String {
        match self {
            Origin::File { text, .. } => text.clone(),
            Origin::Env { var } => var.clone(),
            Origin::CommandLine { arg } => arg.clone(),
            Origin::Logic { inner, .. } => inner.text(),
        }
    }

    pub fn is_command_line(&self) -> bool {
        matches!(self, Origin::CommandLine { .. })
    }

    /// Prefixes a problem with where it is: `app.ini:3: 'htp-socket = :8000': ...`; on the
    /// command line the message stands alone (it names the flag already).
    pub fn message(&self, what: &str) -> String {
        match self {
            Origin::CommandLine { .. } => what.to_string(),
            Origin::Env { var } => format!("environment: '{var}': {what}"),
            Origin::Logic { block, at, inner } => format!(
                "{}: '{}' (inside '{block}' at {}): {what}",
                inner.place(),
                inner.text(),
                at.place()
            ),
            other => format!("{}: '{}': {what}", other.place(), other.text()),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.place())
    }
}

/// One option (or placeholder) as uWSGI's `exported_opts` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    /// `None` for a flag given on the command line without a value (uWSGI's NULL).
    pub value: Option<String>,
    pub origin: Origin,
    /// A construct of the language (`ini`, `if-env`, `set-placeholder`, ...) already acted on
    /// (uWSGI's `configured`): placeholders are not expanded in it and it configures nothing.
    pub language: bool,
    /// References in its value that could not be expanded, with why: uWSGI leaves them in the
    /// value as they are (a `log-format` wants its `%(addr)` kept), so they are an error only
    /// where wsgilab would use the literal text (a chdir, a socket).
    pub unresolved: Vec<String>,
}

/// The reader's result.
#[derive(Debug, Default)]
pub struct Read {
    pub entries: Vec<Entry>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    /// Config files read, as named (with `:section`).
    pub files: Vec<String>,
    /// The format of each of `files` (uWSGI's word: `INI`, `YAML`, `JSON`, `XML`).
    pub formats: Vec<&'static str>,
    pub help: bool,
    pub version: bool,
    pub show_config: bool,
    pub strict: bool,
}

struct Block {
    logic: Logic,
    arg: String,
    key: String,
    origin: Origin,
}

/// Reads everything; see the module comment.
pub struct Reader<'h> {
    host: &'h dyn ConfigHost,
    cwd: PathBuf,
    facts: MachineFacts,
    env: Vec<(String, String)>,
    out: Read,
    block: Option<Block>,
    /// The files being read, with their section (to refuse a file including itself).
    stack: Vec<(PathBuf, String)>,
    /// The last file read, for `ini = :section` (uWSGI's `last_file`).
    last_file: Option<String>,
    first_magic: Option<MagicTable>,
    inherits: Vec<(String, Origin)>,
    /// Keys declared with `set-placeholder` (allowed under `strict`).
    declared: BTreeSet<String>,
    /// Keys referred to by `%(...)` (so they are "used").
    used: BTreeSet<String>,
}

/// Environment variables uWSGI's `parse_sys_envs` does not take as options.
const ENV_SKIP: [&str; 8] = [
    "UWSGI_RELOADS",
    "UWSGI_VASSALS_DIR",
    "UWSGI_EMPEROR_FD",
    "UWSGI_BROODLORD_NUM",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_JAIL_PID",
    "UWSGI_ORIGINAL_PROC_NAME",
];

/// Keys that load a config file.
fn loads_file(key: &str) -> Option<Option<Format>> {
    Some(match key {
        "ini" => Some(Format::Ini),
        "yaml" | "yml" => Some(Format::Yaml),
        "json" | "js" => Some(Format::Json),
        "xml" | "xmlconfig" => Some(Format::Xml),
        // By extension.
        "include" | "config" => None,
        _ => return None,
    })
}

/// Removes `.` components and resolves `..` lexically, so `%d` reads well.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Splits `file.ini:section` (uWSGI's form) into the path and the section (`None` without one).
/// A `:` followed by something that looks like a path is part of the path.
pub fn split_section(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once(':') {
        Some((path, section)) if !section.contains('/') => {
            (path, (!section.is_empty()).then_some(section))
        }
        _ => (spec, None),
    }
}

impl<'h> Reader<'h> {
    pub fn new(host: &'h dyn ConfigHost) -> Self {
        Reader {
            cwd: host.cwd(),
            facts: host.facts(),
            env: host.env_vars(),
            host,
            out: Read::default(),
            block: None,
            stack: Vec::new(),
            last_file: None,
            first_magic: None,
            inherits: Vec::new(),
            declared: BTreeSet::new(),
            used: BTreeSet::new(),
        }
    }

    fn error(&mut self, origin: &Origin, what: impl AsRef<str>) {
        let m = origin.message(what.as_ref());
        if !self.out.errors.contains(&m) {
            self.out.errors.push(m);
        }
    }

    fn warn(&mut self, message: String) {
        if !self.out.warnings.contains(&message) {
            self.out.warnings.push(message);
        }
    }

    /// Everything, in uWSGI's order, then the placeholder passes.
    pub fn read(mut self, args: &[String]) -> Read {
        self.read_env();
        self.read_command_line(args);
        if let Some(b) = self.block.take() {
            let what = format!(
                "'{}' has no matching '{}': every option after it was read inside the block",
                b.key,
                if b.key.starts_with("for") {
                    "endfor"
                } else {
                    "endif"
                }
            );
            // uWSGI ends a block silently at the end of the configuration; wsgilab says so.
            self.warn(b.origin.message(&what));
        }
        // `inherit`: after everything else, as uWSGI's configure loop reaches it.
        let inherits = std::mem::take(&mut self.inherits);
        for (spec, origin) in inherits {
            self.load(&spec, None, &origin);
        }
        self.block = None;
        self.expand();
        self.check_unused();
        self.out
    }

    fn read_env(&mut self) {
        let vars = self.env.clone();
        for (k, v) in vars {
            let Some(rest) = k.strip_prefix("UWSGI_") else {
                continue;
            };
            if ENV_SKIP.contains(&k.as_str()) || rest.is_empty() {
                continue;
            }
            // uWSGI's env_to_arg: lower case, `_` becomes `-`.
            let key = rest.to_ascii_lowercase().replace('_', "-");
            let origin = Origin::Env {
                var: format!("{k}={v}"),
            };
            self.add(key, Some(v), origin);
        }
    }

    fn read_command_line(&mut self, args: &[String]) {
        let mut lone: Vec<String> = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg == "--" {
                lone.extend(args[i..].iter().cloned());
                break;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let Some(opt) = options::lookup(name) else {
                    // Its value, if it has one, is not a stray argument of its own.
                    if inline.is_none() && args.get(i).is_some_and(|a| !a.starts_with('-')) {
                        let (p, _) = split_section(&args[i]);
                        if Format::of(p).is_none() && !p.ends_with(".py") && !p.ends_with(".wsgi") {
                            i += 1;
                        }
                    }
                    let hint = options::suggest(name)
                        .map(|s| format!(" (did you mean --{s}?)"))
                        .unwrap_or_else(|| {
                            " (not a uWSGI option; see 'wsgilab serve --help')".to_string()
                        });
                    self.out
                        .errors
                        .push(format!("unknown option '--{name}'{hint}"));
                    continue;
                };
                let value = match (opt.arg, inline) {
                    (Arg::None, Some(_)) => {
                        self.out
                            .errors
                            .push(format!("'--{name}' takes no value (write just --{name})"));
                        continue;
                    }
                    (Arg::None, None) | (Arg::Optional, None) => None,
                    (_, Some(v)) => Some(v),
                    (Arg::Required, None) => match args.get(i) {
                        Some(v) => {
                            i += 1;
                            Some(v.clone())
                        }
                        None => {
                            self.out.errors.push(format!("'--{name}' needs a value"));
                            continue;
                        }
                    },
                };
                let text = match &value {
                    Some(v) => format!("--{name} {v}"),
                    None => format!("--{name}"),
                };
                self.add(name.to_string(), value, Origin::CommandLine { arg: text });
                continue;
            }
            if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
                // getopt: letters may be bundled (`-Mp 4`); a letter that takes a value takes
                // the rest of the word or the next argument.
                let chars: Vec<char> = shorts.chars().collect();
                let mut j = 0;
                while j < chars.len() {
                    let c = chars[j];
                    j += 1;
                    if c == 'h' {
                        self.out.help = true;
                        continue;
                    }
                    // `-V` is clap's --version (uWSGI has no such letter).
                    if c == 'V' {
                        self.out.version = true;
                        continue;
                    }
                    let Some(opt) = options::lookup_short(c) else {
                        self.out.errors.push(format!(
                            "unknown option '-{c}' (see 'wsgilab serve --help' for the short \
                             options)"
                        ));
                        break;
                    };
                    let value = if opt.arg == Arg::Required {
                        if j < chars.len() {
                            let v: String = chars[j..].iter().collect();
                            j = chars.len();
                            Some(v)
                        } else if let Some(v) = args.get(i) {
                            i += 1;
                            Some(v.clone())
                        } else {
                            self.out
                                .errors
                                .push(format!("'-{c}' (--{}) needs a value", opt.name));
                            break;
                        }
                    } else {
                        None
                    };
                    let text = match &value {
                        Some(v) => format!("-{c} {v}"),
                        None => format!("-{c}"),
                    };
                    self.add(
                        opt.name.to_string(),
                        value,
                        Origin::CommandLine { arg: text },
                    );
                }
                continue;
            }
            lone.push(arg.clone());
        }
        // Lone arguments: config files by extension, a .py/.wsgi file as the app (the python
        // plugin's "magic" file), as uWSGI's `uwsgi_commandline_config` does after getopt.
        for file in lone {
            let origin = Origin::CommandLine { arg: file.clone() };
            let (path, _) = split_section(&file);
            if Format::of(path).is_some() {
                self.load(&file, None, &origin);
            } else if file.ends_with(".py") || file.ends_with(".wsgi") {
                self.add("wsgi-file".to_string(), Some(file), origin);
            } else {
                self.out.errors.push(format!(
                    "unexpected argument '{file}' (options start with '--'; a lone file must be \
                     a .ini, .yml, .json, .xml, .py or .wsgi file)"
                ));
            }
        }
    }

    /// uWSGI's `add_exported_option_do`: ends or feeds a logic block, or adds the entry and acts
    /// on it if it is immediate.
    fn add(&mut self, key: String, value: Option<String>, origin: Origin) {
        if logic::is_end(&key) {
            if self.block.take().is_none() {
                self.warn(origin.message(&format!(
                    "'{key}' without an open if-/for- block (uWSGI ignores it)"
                )));
            }
            self.push(key, value, origin, true);
            return;
        }
        if let Some(b) = &self.block {
            let (logic, arg, bkey, borigin) =
                (b.logic, b.arg.clone(), b.key.clone(), b.origin.clone());
            let raw = value.clone().unwrap_or_default();
            let mut cx = Cx { r: self };
            let produced = logic::apply(logic, &arg, &raw, &mut cx);
            match produced {
                Ok(values) => {
                    for v in values {
                        let o = Origin::Logic {
                            block: format!("{bkey} = {arg}"),
                            at: Box::new(borigin.clone()),
                            inner: Box::new(origin.clone()),
                        };
                        self.handle(key.clone(), Some(v), o);
                    }
                }
                Err(e) => self.error(&borigin, e),
            }
            return;
        }
        self.handle(key, value, origin);
    }

    fn push(&mut self, key: String, value: Option<String>, origin: Origin, language: bool) {
        self.out.entries.push(Entry {
            key,
            value,
            origin,
            language,
            unresolved: Vec::new(),
        });
    }

    /// Adds an entry and runs what uWSGI runs at once for it.
    fn handle(&mut self, key: String, value: Option<String>, origin: Origin) {
        let policy = options::lookup(&key).map(|o| o.policy);
        if policy != Some(Policy::Reader) {
            self.push(key, value, origin, false);
            return;
        }
        self.push(key.clone(), value.clone(), origin.clone(), true);
        let v = value.clone().unwrap_or_default();
        if let Some(format) = loads_file(&key) {
            let spec = self.expand_now(&v, &origin);
            self.load(&spec, format, &origin);
            return;
        }
        if let Some(logic) = Logic::starter(&key) {
            if self.block.is_some() {
                self.error(
                    &origin,
                    "recursive logic in options is not supported: close the open block with \
                     'endif' or 'endfor' first",
                );
                return;
            }
            self.block = Some(Block {
                logic,
                arg: v,
                key,
                origin,
            });
            return;
        }
        match key.as_str() {
            "inherit" => self.inherits.push((v, origin)),
            "set-placeholder" | "set-ph" | "set" => match v.split_once('=') {
                Some((name, val)) if !name.is_empty() => {
                    if options::lookup(name).is_some() {
                        self.error(
                            &origin,
                            format!(
                                "you cannot use '{name}' as a placeholder, it is already an \
                                 option"
                            ),
                        );
                        return;
                    }
                    self.declared.insert(name.to_string());
                    // uWSGI marks it configured: its value is not expanded either.
                    self.push(name.to_string(), Some(val.to_string()), origin, true);
                }
                _ => self.error(&origin, "expected 'set-placeholder = NAME=VALUE'"),
            },
            "strict" => self.out.strict = !is_false(value.as_deref()),
            "show-config" => self.out.show_config = !is_false(value.as_deref()),
            "help" | "usage" => self.out.help = true,
            "version" => self.out.version = true,
            _ => {}
        }
    }

    /// A file name in an immediate option, with the placeholders known so far expanded (uWSGI
    /// would open the literal `%(base)/app.ini`; wsgilab uses what `base` already is).
    fn expand_now(&mut self, value: &str, origin: &Origin) -> String {
        let mut v = value.to_string();
        for symbol in ['$', '%'] {
            let mut guard = 0;
            while let Some((start, end, key)) = placeholders::find_reference(&v, symbol) {
                guard += 1;
                let key = key.to_string();
                let found = if symbol == '$' {
                    self.env_var(&key)
                } else {
                    let mut unknown = Vec::new();
                    let entries = &self.out.entries;
                    let used = &mut self.used;
                    placeholders::evaluate(
                        &key,
                        &mut |k| first_value(entries, used, k),
                        &mut unknown,
                    )
                };
                let Some(found) = found else {
                    self.error(
                        origin,
                        format!(
                            "'{symbol}({key})' is not defined yet where this file is named \
                             (define it before this line)"
                        ),
                    );
                    break;
                };
                v.replace_range(start..end, &found);
                if guard > 64 {
                    break;
                }
            }
        }
        v
    }

    fn env_var(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// Reads a config file (`FILE[:section]`); `format` `None` means by extension.
    fn load(&mut self, spec: &str, format: Option<Format>, from: &Origin) {
        let (mut path, section) = split_section(spec);
        let last;
        if path.is_empty() {
            // `ini = :other`: another section of the file being read.
            match self.last_file.clone() {
                Some(f) => {
                    last = f;
                    path = &last;
                }
                None => {
                    self.error(from, format!("'{spec}' names a section of the current file, but no file is being read (write FILE:SECTION)"));
                    return;
                }
            }
        }
        let Some(format) = format.or_else(|| Format::of(path)) else {
            self.error(
                from,
                format!(
                    "cannot tell the format of '{path}': name a .ini, .yml/.yaml, .json or .xml \
                     file (or use ini = / yaml = / json = / xml =)"
                ),
            );
            return;
        };
        let section_name = section.unwrap_or("uwsgi").to_string();
        let full = normalize(&self.cwd.join(path));
        if self
            .stack
            .iter()
            .any(|(p, s)| *p == full && *s == section_name)
        {
            self.error(
                from,
                format!("config file '{path}' includes itself (through '{spec}')"),
            );
            return;
        }
        if self.stack.len() >= 16 {
            self.error(from, format!("config files nested too deeply at '{spec}'"));
            return;
        }
        let text = match self.host.read_file(&full) {
            Ok(t) => t,
            Err(e) => {
                let kind = format.name().to_ascii_lowercase();
                let what = if e.kind() == io::ErrorKind::NotFound {
                    format!(
                        "{kind} file '{path}' not found (looked for {})",
                        full.display()
                    )
                } else {
                    format!("cannot read {kind} file '{path}': {e}")
                };
                if from.is_command_line() {
                    self.out.errors.push(what);
                } else {
                    self.error(from, what);
                }
                return;
            }
        };
        self.out.files.push(spec.to_string());
        self.out.formats.push(format.name());
        self.last_file = Some(path.to_string());
        let magic =
            MagicTable::for_file(spec, &full, section, &self.facts, self.first_magic.as_ref());
        if self.first_magic.is_none() {
            self.first_magic = Some(magic.clone());
        }
        let (text, unknown) = magic.substitute(&text);
        for c in unknown {
            let shown = if c == '\n' {
                "\\n".to_string()
            } else {
                c.to_string()
            };
            self.warn(format!(
                "{path}: '%{shown}' is not one of uWSGI's magic variables: uWSGI replaces it \
                 with nothing (write %% for a percent sign)"
            ));
        }
        let parsed = format.parse(&text, &section_name);
        for (line, e) in parsed.errors {
            self.out.errors.push(format!("{path}:{line}: {e}"));
        }
        for (line, w) in parsed.warnings {
            self.warn(format!("{path}:{line}: {w}"));
        }
        if !parsed.found_section {
            let hint = if section.is_none() {
                format!(" (uWSGI reads only [uwsgi]; use {path}:SECTION for another)")
            } else {
                String::new()
            };
            self.warn(format!(
                "can't find section \"{section_name}\" in {} configuration file {path}: nothing \
                 was read from it{hint}",
                format.name()
            ));
        }
        self.stack.push((full, section_name));
        for item in parsed.items {
            let origin = Origin::File {
                file: path.to_string(),
                line: item.line,
                text: item.text,
            };
            if item.key.is_empty() {
                // uWSGI takes it as a placeholder with an empty name: harmless, but surely not
                // what was meant (a merge conflict's `=======`, say).
                self.warn(
                    origin.message("a line with '=' but no key before it (uWSGI ignores it)"),
                );
                continue;
            }
            self.add(item.key, Some(item.value), origin);
        }
        self.stack.pop();
    }

    /// uWSGI's three passes: `$(ENV)`, `@(FILE)`, `%(placeholder)`.
    fn expand(&mut self) {
        for symbol in ['$', '@', '%'] {
            for i in 0..self.out.entries.len() {
                // uWSGI's passes skip what it acted on already (`configured`): the language's
                // own keys and the immediate options.
                if self.out.entries[i].language || options::immediate(&self.out.entries[i].key) {
                    continue;
                }
                let Some(mut v) = self.out.entries[i].value.clone() else {
                    continue;
                };
                let origin = self.out.entries[i].origin.clone();
                let mut from = 0;
                let mut rounds = 0;
                while let Some((start, end, key)) = placeholders::find_reference(&v[from..], symbol)
                {
                    let (start, end) = (start + from, end + from);
                    let key = key.to_string();
                    rounds += 1;
                    // uWSGI would loop for ever here; wsgilab stops and says why.
                    if rounds > 100 || v.len() > 65536 {
                        self.out.entries[i].unresolved.push(format!(
                            "'{symbol}({key})' keeps expanding into itself (a placeholder that \
                             refers to itself)"
                        ));
                        break;
                    }
                    let found = match symbol {
                        '$' => self.env_var(&key).ok_or_else(|| {
                            format!(
                                "'$({key})': the environment variable {key} is not set (set it, \
                                 or guard the line with 'if-env = {key}')"
                            )
                        }),
                        '@' => {
                            let p = normalize(&self.cwd.join(&key));
                            match self.host.read_file(&p) {
                                // uWSGI drops one final newline.
                                Ok(mut t) => {
                                    if t.ends_with('\n') || t.ends_with('\r') {
                                        t.pop();
                                    }
                                    Ok(t)
                                }
                                Err(_) => {
                                    Err(format!("'@({key})': cannot read the file {}", p.display()))
                                }
                            }
                        }
                        _ => {
                            let mut unknown = Vec::new();
                            let entries = &self.out.entries;
                            let used = &mut self.used;
                            let r = placeholders::evaluate(
                                &key,
                                &mut |k| first_value(entries, used, k),
                                &mut unknown,
                            );
                            match r {
                                Some(r) => {
                                    if !unknown.is_empty() {
                                        // Inside an expression uWSGI reads an unknown name as
                                        // "" (so `%((4 * 2) + 1)` is 1: no parentheses).
                                        let names = unknown
                                            .iter()
                                            .map(|u| format!("'{u}'"))
                                            .collect::<Vec<_>>()
                                            .join(", ");
                                        self.warn(origin.message(&format!(
                                            "in '%({key})', {names} is neither a number nor a \
                                             placeholder: uWSGI reads it as empty, which makes \
                                             '{r}' (its arithmetic has no parentheses; write one \
                                             operation per placeholder)"
                                        )));
                                    }
                                    Ok(r)
                                }
                                None => Err(format!(
                                    "'%({key})': '{key}' is not defined (define it as 'NAME = \
                                     VALUE' before use, or fix the spelling)"
                                )),
                            }
                        }
                    };
                    match found {
                        Ok(text) => {
                            v.replace_range(start..end, &text);
                            // uWSGI scans the value again from the start.
                            from = 0;
                        }
                        Err(e) => {
                            self.out.entries[i].unresolved.push(e);
                            from = end;
                        }
                    }
                }
                self.out.entries[i].value = Some(v);
            }
        }
    }

    /// Keys that are neither options nor used as placeholders: a warning listing them all (an
    /// error each under `strict`, as uWSGI's strict mode refuses unknown keys).
    fn check_unused(&mut self) {
        let mut unused: Vec<(String, Origin)> = Vec::new();
        let entries = self.out.entries.clone();
        for e in &entries {
            if e.language || options::lookup(&e.key).is_some() {
                continue;
            }
            if self.out.strict && !self.declared.contains(&e.key) {
                let hint = options::suggest(&e.key)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                self.error(
                    &e.origin,
                    format!(
                        "'{}' is not a uWSGI option, and strict mode allows no placeholders{hint}",
                        e.key
                    ),
                );
                continue;
            }
            if !self.used.contains(&e.key) && !unused.iter().any(|(k, _)| *k == e.key) {
                unused.push((e.key.clone(), e.origin.clone()));
            }
        }
        // A placeholder given twice and used: `%(name)` takes the *first* value while an
        // option takes the last, a classic surprise when a local file "overrides" a base one.
        let mut seen: Vec<&str> = Vec::new();
        let mut notes = Vec::new();
        for e in &entries {
            if e.language || options::lookup(&e.key).is_some() || !self.used.contains(&e.key) {
                continue;
            }
            if seen.contains(&e.key.as_str()) {
                continue;
            }
            seen.push(&e.key);
            let all: Vec<&Entry> = entries
                .iter()
                .filter(|x| x.key == e.key && !x.language)
                .collect();
            if all.len() > 1 && all.iter().any(|x| x.value != e.value) {
                let others: Vec<String> = all[1..]
                    .iter()
                    .map(|x| {
                        format!(
                            "{} at {}",
                            x.value.as_deref().unwrap_or(""),
                            x.origin.place()
                        )
                    })
                    .collect();
                notes.push(format!(
                    "placeholder '{}' is set more than once: %({}) uses the first value, {} (at \
                     {}), not {} (uWSGI's placeholders take the first value, its options the \
                     last)",
                    e.key,
                    e.key,
                    e.value.as_deref().unwrap_or(""),
                    e.origin.place(),
                    others.join(", ")
                ));
            }
        }
        for n in notes {
            self.warn(n);
        }
        if !unused.is_empty() {
            let list: Vec<String> = unused
                .iter()
                .map(|(k, o)| {
                    let hint = options::suggest(k)
                        .map(|s| format!(", did you mean {s}?"))
                        .unwrap_or_default();
                    format!("'{k}' ({}{hint})", o.place())
                })
                .collect();
            self.warn(format!(
                "not uWSGI options, so read as placeholders, and never used: {} (uWSGI ignores \
                 them silently; add 'strict = true' to make them errors)",
                list.join(", ")
            ));
        }
    }
}

/// The first value given for `key` (uWSGI's `uwsgi_get_exported_opt`), marking it used.
fn first_value(entries: &[Entry], used: &mut BTreeSet<String>, key: &str) -> Option<String> {
    let e = entries.iter().find(|e| e.key == key)?;
    used.insert(key.to_string());
    e.value.clone()
}

/// uWSGI's `uwsgi_opt_true`: `false`, `off`, `no` and `0` are false; anything else is true.
pub fn is_false(v: Option<&str>) -> bool {
    match v {
        None => false,
        Some(v) => {
            let v = v.trim();
            v.eq_ignore_ascii_case("false")
                || v.eq_ignore_ascii_case("off")
                || v.eq_ignore_ascii_case("no")
                || v == "0"
        }
    }
}

struct Cx<'a, 'h> {
    r: &'a mut Reader<'h>,
}

impl LogicContext for Cx<'_, '_> {
    fn env(&self, name: &str) -> Option<String> {
        self.r.env_var(name)
    }
    fn option(&mut self, name: &str) -> Option<String> {
        let r = &mut *self.r;
        first_value(&r.out.entries, &mut r.used, name)
    }
    fn hostname(&self) -> String {
        self.r.facts.hostname.clone()
    }
    fn is_file(&self, path: &Path) -> bool {
        self.r.host.is_file(&normalize(path))
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.r.host.is_dir(&normalize(path))
    }
    fn read_file(&self, path: &Path) -> Option<String> {
        self.r.host.read_file(&normalize(path)).ok()
    }
    fn list_dir(&self, path: &Path) -> Vec<String> {
        self.r.host.list_dir(&normalize(path))
    }
    fn cwd(&self) -> PathBuf {
        self.r.cwd.clone()
    }
}
