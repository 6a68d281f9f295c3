//! Scenarios: one TOML file per teaching case — the machine, its files, the command typed, the
//! app's behaviour, the clients, the faults and what should happen — read strictly ([`parse`]),
//! replayed over the simulated world ([`run`]), and rendered for a person ([`render`]) with an
//! explanation derived from the trace ([`explain`]). `scenarios/README.md` documents the format.

pub mod balancer;
pub mod client;
pub mod expect;
pub mod explain;
pub mod html;
pub mod outcome;
pub mod phases;
pub mod record;
pub mod render;
pub mod run;
pub mod states;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::net::Sysctls;
use crate::python::{AppBehaviour, PythonInstall};
use crate::trace::EventKind;
pub use outcome::Outcome;

/// A whole scenario file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// One line: what the scenario shows.
    pub title: String,
    /// A paragraph for the reader: the lesson.
    pub teaches: String,
    /// The seed used when `--seed` is not given (client jitter draws from it).
    #[serde(default)]
    pub seed: u64,
    /// Whether the scenario can also run for real on this machine (`replay --real`).
    #[serde(default)]
    pub real: bool,
    /// Why it cannot, when `real` is false (another host, privileges...).
    #[serde(default)]
    pub simulated_only: Option<String>,
    /// The run stops at this virtual time whatever is still going on.
    #[serde(default = "default_time_limit")]
    pub time_limit_s: u64,
    /// How long the run goes on after the last client finished and the last fault fired, for
    /// what follows (respawns, the master's tick).
    #[serde(default = "default_linger")]
    pub linger_ms: u64,
    pub machine: MachineSection,
    /// More server machines like `server` (same files, same command), for a balancer.
    #[serde(default)]
    pub more_servers: Vec<String>,
    /// A load balancer (nginx-like) in front of the servers.
    #[serde(default)]
    pub balancer: Option<balancer::BalancerSpec>,
    #[serde(default)]
    pub python: Option<PythonInstall>,
    /// Path → content. Directories are implied by the files below them.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Empty directories.
    #[serde(default)]
    pub dirs: Vec<String>,
    /// The server's command line, as typed: `uwsgi ...` or `wsgilab serve ...`.
    #[serde(default)]
    pub command: Option<String>,
    /// Instead of `command`: the same workload against several command lines, compared.
    #[serde(default)]
    pub variants: Vec<Variant>,
    #[serde(default)]
    pub app: AppBehaviour,
    #[serde(default)]
    pub clients: Vec<ClientGroup>,
    #[serde(default)]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub expect: Expect,
}

fn default_time_limit() -> u64 {
    120
}

fn default_linger() -> u64 {
    1500
}

/// The server machine.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MachineSection {
    /// Where the command was typed.
    pub cwd: PathBuf,
    #[serde(default = "default_cores")]
    pub cores: usize,
    #[serde(default = "default_nodename")]
    pub nodename: String,
    /// The user's uid (0 is root: ports below 1024 can be bound).
    #[serde(default = "default_uid")]
    pub uid: u32,
    /// The environment the command was typed in.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kernel parameters that differ from this machine's (Linux 6.18) defaults.
    #[serde(default)]
    pub sysctls: SysctlOverrides,
    /// Ports another program (an old instance, another server) already listens on, on every
    /// address, before the command is typed.
    #[serde(default)]
    pub busy_ports: Vec<u16>,
}

fn default_cores() -> usize {
    2
}

fn default_nodename() -> String {
    "vm".into()
}

fn default_uid() -> u32 {
    1000
}

/// `[machine.sysctls]`: any of these, the rest as on this machine.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SysctlOverrides {
    pub somaxconn: Option<u32>,
    pub tcp_syn_retries: Option<u32>,
    pub tcp_syn_linear_timeouts: Option<u32>,
    pub tcp_synack_retries: Option<u32>,
    pub tcp_abort_on_overflow: Option<bool>,
    pub tcp_syncookies: Option<u8>,
    /// One-way latency between hosts, in milliseconds.
    pub link_latency_ms: Option<u64>,
}

impl SysctlOverrides {
    pub fn apply(&self, mut sysctls: Sysctls) -> Sysctls {
        if let Some(v) = self.somaxconn {
            sysctls.somaxconn = v;
        }
        if let Some(v) = self.tcp_syn_retries {
            sysctls.tcp_syn_retries = v;
        }
        if let Some(v) = self.tcp_syn_linear_timeouts {
            sysctls.tcp_syn_linear_timeouts = v;
        }
        if let Some(v) = self.tcp_synack_retries {
            sysctls.tcp_synack_retries = v;
        }
        if let Some(v) = self.tcp_abort_on_overflow {
            sysctls.tcp_abort_on_overflow = v;
        }
        if let Some(v) = self.tcp_syncookies {
            sysctls.tcp_syncookies = v;
        }
        if let Some(v) = self.link_latency_ms {
            sysctls.link_latency = std::time::Duration::from_millis(v);
        }
        sysctls
    }
}

/// One of several command lines run against the same workload.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    pub command: String,
    /// Expectations for this variant alone (the scenario's `[expect]` applies to every one).
    #[serde(default)]
    pub expect: Option<Expect>,
    /// Faults for this variant instead of the scenario's.
    #[serde(default)]
    pub faults: Option<Vec<Fault>>,
}

/// A group of clients that behave alike.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroup {
    /// A label for the request table (`client`, `slow`, ...).
    #[serde(default)]
    pub name: Option<String>,
    /// The host the clients run on: another machine (`client`, the default) or `server`
    /// itself (loopback).
    #[serde(default = "default_client_host")]
    pub host: String,
    /// The host they connect to.
    #[serde(default = "default_server_host")]
    pub to: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// When the first one starts, in virtual milliseconds from the start of the run.
    #[serde(default)]
    pub at_ms: u64,
    /// How many clients (each with its own connection).
    #[serde(default = "one")]
    pub count: u32,
    /// The gap between two clients' starts.
    #[serde(default)]
    pub every_ms: u64,
    /// Each start moves by up to this much, drawn from the seed.
    #[serde(default)]
    pub jitter_ms: u64,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default = "default_path")]
    pub path: String,
    /// Extra request headers, in order.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub body: Option<String>,
    /// The exact bytes to send instead of a request built from the fields above (each
    /// character one byte, latin-1).
    #[serde(default)]
    pub raw: Option<String>,
    /// Requests sent one after another on the connection (keep-alive).
    #[serde(default = "one")]
    pub requests: u32,
    /// Sends the request this slowly (a slow client, a bad mobile network).
    #[serde(default)]
    pub bytes_per_s: Option<u64>,
    /// Closes the connection this long after sending, if no response has arrived yet.
    #[serde(default)]
    pub disconnect_after_ms: Option<u64>,
    /// Gives up on a request after this long (curl's `--max-time`).
    #[serde(default = "default_client_timeout")]
    pub timeout_ms: u64,
}

fn default_client_host() -> String {
    "client".into()
}

fn default_server_host() -> String {
    SERVER_HOST.into()
}

fn default_port() -> u16 {
    8000
}

fn one() -> u32 {
    1
}

fn default_method() -> String {
    "GET".into()
}

fn default_path() -> String {
    "/".into()
}

fn default_client_timeout() -> u64 {
    60_000
}

/// The host the server runs on.
pub const SERVER_HOST: &str = "server";

/// Something done to the server at a given time: a signal, as `kill` sends it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub at_ms: u64,
    /// `SIGTERM`, `SIGKILL`, `SIGHUP`, `SIGINT`, ... (or a number).
    pub signal: crate::python::CrashSignal,
    /// `master` (the process the command started), `worker N`, or `all` (every process of
    /// the server at once, as the OOM killer or `kill -9 -PGID` does).
    #[serde(default)]
    pub to: FaultTarget,
    /// The server machine.
    #[serde(default = "default_server_host")]
    pub host: String,
}

impl Fault {
    /// The signal's short name, as `kill -TERM` takes it.
    pub fn short_signal(&self) -> String {
        server::procs::Signal::from_number(self.signal.0)
            .name()
            .trim_start_matches("SIG")
            .to_string()
    }

    /// The pid the signal goes to: a worker by the last start line the server's log has for it
    /// (see [`server::log::lines::WorkerStarted`]), otherwise the process the command started.
    /// `None` when the log names no such worker.
    pub fn target_pid<'l>(
        &self,
        started: Option<u32>,
        log: impl DoubleEndedIterator<Item = &'l str>,
    ) -> Option<u32> {
        match self.to {
            FaultTarget::Worker(n) => server::log::lines::WorkerStarted::last_pid(log, n),
            FaultTarget::Master | FaultTarget::All => started,
        }
    }

    /// The trace's words for the operator's `kill`, sent to `pid`.
    pub fn typed(&self, pid: u32) -> String {
        format!(
            "kill -{} {pid} ({}), typed by the operator",
            self.short_signal(),
            self.to
        )
    }

    /// The trace's words for a `kill` that found no process: `why`.
    pub fn missed(&self, why: &str) -> String {
        format!("kill -{} ({}): {why}", self.short_signal(), self.to)
    }
}

/// Which process of the server a fault's signal goes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FaultTarget {
    /// The process the command started (the master, or the only process).
    #[default]
    Master,
    /// Worker N (from 1), whichever pid it has at that moment.
    Worker(usize),
    /// Every process of the server at once.
    All,
}

impl fmt::Display for FaultTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultTarget::Master => f.write_str("master"),
            FaultTarget::Worker(n) => write!(f, "worker {n}"),
            FaultTarget::All => f.write_str("all"),
        }
    }
}

impl std::str::FromStr for FaultTarget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let worker = text
            .strip_prefix("worker")
            .map(str::trim)
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0);
        match (text, worker) {
            ("master", _) => Ok(FaultTarget::Master),
            ("all", _) => Ok(FaultTarget::All),
            (_, Some(n)) => Ok(FaultTarget::Worker(n)),
            _ => Err(format!(
                "`to = {text:?}`: expected \"master\", \"worker N\" or \"all\""
            )),
        }
    }
}

impl Serialize for FaultTarget {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FaultTarget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What should happen; checked after the run, a mismatch makes `replay` exit non-zero.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Outcome → how many requests end so: `"200"`, `"500"`, `refused`, `reset`,
    /// `no_response`, `timeout`, `gave_up`, `client_closed`, `cut`, `unfinished`.
    #[serde(default)]
    pub outcomes: BTreeMap<Outcome, u32>,
    /// Lines of the server's log that must appear (substrings).
    #[serde(default)]
    pub log_contains: Vec<String>,
    /// Substrings no line of the server's log may contain.
    #[serde(default)]
    pub log_lacks: Vec<String>,
    /// The server process's exit status (`running` if it must still run at the end).
    #[serde(default)]
    pub exit_status: Option<ExitExpectation>,
    /// Kinds of trace events that must occur (`syn_dropped`, `ack_dropped`, `killed`, ...).
    #[serde(default)]
    pub events: Vec<EventKind>,
}

/// `exit_status = 1` or `exit_status = "running"`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ExitExpectation {
    Code(i32),
    Word(String),
}

/// A scenario file that could not be used: where, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based line and column, when the error has a place in the file.
    pub place: Option<(usize, usize)>,
    pub message: String,
    /// The offending line of the file, for the caret.
    pub excerpt: Option<String>,
    /// The file's other problems, each with its own place: a file is reported whole.
    pub more: Vec<ScenarioError>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.place {
            Some((line, col)) => write!(f, "{}:{line}:{col}: {}", self.file, self.message)?,
            None => write!(f, "{}: {}", self.file, self.message)?,
        }
        if let (Some((line, col)), Some(excerpt)) = (self.place, &self.excerpt) {
            let gutter = line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{line} | {excerpt}\n{:gutter$} | {:>col$}",
                "", "", "^"
            )?;
        }
        for other in &self.more {
            write!(f, "\n{other}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Reads a scenario from its text; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
    let scenario: Scenario = toml::from_str(text).map_err(|e| {
        let place = e.span().map(|span| line_col(text, span.start));
        ScenarioError {
            file: file.to_string(),
            excerpt: place.and_then(|(line, _)| text.lines().nth(line - 1).map(str::to_string)),
            place,
            message: e.message().trim().to_string(),
            more: Vec::new(),
        }
    })?;
    let mut problems = scenario.validate().into_iter().map(|problem| {
        // Point at the first line that mentions what is wrong, when there is one.
        let place = problem.key.as_deref().and_then(|key| {
            text.lines()
                .position(|l| l.trim_start().starts_with(key))
                .map(|i| {
                    (
                        i + 1,
                        1 + text.lines().nth(i).unwrap_or("").find(key).unwrap_or(0),
                    )
                })
        });
        ScenarioError {
            file: file.to_string(),
            excerpt: place.and_then(|(line, _)| text.lines().nth(line - 1).map(str::to_string)),
            place,
            message: problem.text,
            more: Vec::new(),
        }
    });
    if let Some(mut first) = problems.next() {
        first.more = problems.collect();
        return Err(first);
    }
    Ok(scenario)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A semantic mistake, and the key whose line it is on (when there is one).
struct Invalid {
    key: Option<String>,
    text: String,
}

fn invalid(key: &str, text: String) -> Invalid {
    Invalid {
        key: Some(key.to_string()),
        text,
    }
}

impl Scenario {
    /// Every server machine's host name, `server` first.
    pub fn servers(&self) -> Vec<String> {
        std::iter::once(SERVER_HOST.to_string())
            .chain(self.more_servers.iter().cloned())
            .collect()
    }

    /// The command lines to run: `(variant name, command)`.
    pub fn commands(&self) -> Vec<(Option<String>, String)> {
        match &self.command {
            Some(command) => vec![(None, command.clone())],
            None => self
                .variants
                .iter()
                .map(|v| (Some(v.name.clone()), v.command.clone()))
                .collect(),
        }
    }

    /// The faults of a variant (its own, or the scenario's).
    pub fn faults_of(&self, variant: Option<&str>) -> &[Fault] {
        self.variants
            .iter()
            .find(|v| Some(v.name.as_str()) == variant)
            .and_then(|v| v.faults.as_deref())
            .unwrap_or(&self.faults)
    }

    /// Every semantic mistake of the scenario, in the order of the file's parts.
    fn validate(&self) -> Vec<Invalid> {
        let mut problems = Vec::new();
        self.check_commands(&mut problems);
        self.check_machine(&mut problems);
        let targets = self.check_hosts(&mut problems);
        self.check_clients(&targets, &mut problems);
        self.check_faults_and_expectations(&mut problems);
        problems
    }

    fn check_commands(&self, problems: &mut Vec<Invalid>) {
        match (&self.command, self.variants.is_empty()) {
            (Some(_), false) => problems.push(invalid(
                "variants",
                "both `command` and `[[variants]]` are given: use `command` for one command line, or `[[variants]]` (each with a name and a command) to compare several".into(),
            )),
            (None, true) => problems.push(Invalid {
                key: None,
                text: "no `command`: write the server's command line as typed, e.g. command = \"uwsgi --http-socket :8000 --module mysite.wsgi\"".into(),
            }),
            _ => {}
        }
        for (_, command) in self.commands() {
            if let Err(e) = split_command(&command) {
                problems.push(invalid("command", e));
            }
        }
    }

    fn check_machine(&self, problems: &mut Vec<Invalid>) {
        if !self.machine.cwd.is_absolute() {
            problems.push(invalid(
                "cwd",
                format!(
                    "machine.cwd must be an absolute path (where the command was typed), not {:?}",
                    self.machine.cwd
                ),
            ));
        }
        if self.machine.cores == 0 {
            problems.push(invalid("cores", "machine.cores must be at least 1".into()));
        }
        for path in self.files.keys().chain(&self.dirs) {
            if !path.starts_with('/') {
                let hint = if path.contains('/') {
                    ""
                } else {
                    " (in TOML a key written after a [table] header belongs to that table: move top-level keys such as `command` above the first [table])"
                };
                problems.push(invalid(
                    path,
                    format!("file paths must be absolute: {path:?}{hint}"),
                ));
            }
        }
    }

    /// Checks the servers and the balancer; the hosts a client may talk to.
    fn check_hosts(&self, problems: &mut Vec<Invalid>) -> Vec<String> {
        let servers = self.servers();
        for name in &self.more_servers {
            if name.is_empty() || name.contains(char::is_whitespace) || name == SERVER_HOST {
                problems.push(invalid(
                    "more_servers",
                    format!(
                        "more_servers: {name:?} must be a single word other than \"{SERVER_HOST}\""
                    ),
                ));
            }
        }
        let mut targets = servers.clone();
        if let Some(b) = &self.balancer {
            for backend in &b.backends {
                if !servers.contains(backend) {
                    problems.push(invalid(
                        "backends",
                        format!(
                            "balancer.backends: {backend:?} is not a server (servers: {})",
                            servers.join(", ")
                        ),
                    ));
                }
            }
            targets.push(b.host.clone());
        }
        targets
    }

    fn check_clients(&self, targets: &[String], problems: &mut Vec<Invalid>) {
        for (i, client) in self.clients.iter().enumerate() {
            let n = i + 1;
            if !targets.contains(&client.to) {
                problems.push(invalid(
                    "to",
                    format!(
                        "[[clients]] #{n}: `to = {:?}` is not a host of this scenario (expected one of {})",
                        client.to,
                        targets.join(", ")
                    ),
                ));
            }
            if targets.contains(&client.host) && client.host != client.to {
                problems.push(invalid(
                    "host",
                    format!("[[clients]] #{n}: clients run on the machine they talk to or on a host of their own, not on {:?}", client.host),
                ));
            }
            if client.host.is_empty() || client.host.contains(char::is_whitespace) {
                problems.push(invalid(
                    "host",
                    format!("[[clients]] #{n}: `host` must be a single word"),
                ));
            }
            if client.count == 0 || client.requests == 0 {
                problems.push(invalid(
                    "count",
                    format!("[[clients]] #{n}: `count` and `requests` must be at least 1"),
                ));
            }
            if client.bytes_per_s == Some(0) {
                problems.push(invalid(
                    "bytes_per_s",
                    format!("[[clients]] #{n}: `bytes_per_s` must be at least 1"),
                ));
            }
            if client
                .raw
                .as_ref()
                .is_some_and(|r| r.chars().any(|c| c as u32 > 255))
            {
                problems.push(invalid(
                    "raw",
                    format!("[[clients]] #{n}: `raw` holds bytes as latin-1 characters; a character above U+00FF cannot be sent"),
                ));
            }
        }
    }

    fn check_faults_and_expectations(&self, problems: &mut Vec<Invalid>) {
        let servers = self.servers();
        let all_faults = self
            .faults
            .iter()
            .chain(self.variants.iter().flat_map(|v| v.faults.iter().flatten()));
        for (i, fault) in all_faults.enumerate() {
            if !servers.contains(&fault.host) {
                problems.push(invalid(
                    "host",
                    format!(
                        "[[faults]] #{}: `host = {:?}` is not a server (servers: {})",
                        i + 1,
                        fault.host,
                        servers.join(", ")
                    ),
                ));
            }
        }
        let expects = std::iter::once(&self.expect)
            .chain(self.variants.iter().filter_map(|v| v.expect.as_ref()));
        for expect in expects {
            if let Some(ExitExpectation::Word(word)) = &expect.exit_status {
                if word != "running" {
                    problems.push(invalid(
                        "exit_status",
                        format!("expect.exit_status is a number or \"running\", not {word:?}"),
                    ));
                }
            }
        }
    }
}

/// Splits a command line as a shell would, and drops the program: `uwsgi` or `wsgilab serve`.
pub fn split_command(command: &str) -> Result<Vec<String>, String> {
    let words = shell_words::split(command)
        .map_err(|e| format!("cannot split the command line {command:?}: {e}"))?;
    let program = words.first().map(String::as_str).unwrap_or("");
    let skip = match program.rsplit('/').next().unwrap_or("") {
        "uwsgi" => 1,
        "wsgilab" if words.get(1).map(String::as_str) == Some("serve") => 2,
        _ => {
            return Err(format!(
                "the command must start with `uwsgi` or `wsgilab serve`, not {program:?}"
            ))
        }
    };
    Ok(words[skip..].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "title = \"t\"\nteaches = \"x\"\ncommand = \"uwsgi --http-socket :8000\"\n[machine]\ncwd = \"/srv\"\n";

    #[test]
    fn a_minimal_scenario_parses() {
        let s = parse(MINIMAL, "m.toml").unwrap();
        assert_eq!(s.machine.cores, 2);
        assert_eq!(
            split_command(s.command.as_deref().unwrap()).unwrap(),
            ["--http-socket", ":8000"]
        );
    }

    #[test]
    fn a_typo_is_reported_with_its_line_and_column() {
        let text = MINIMAL.replace("cwd", "cdw");
        let e = parse(&text, "typo.toml").unwrap_err();
        assert_eq!(e.place.map(|p| p.0), Some(5), "{e}");
        let shown = e.to_string();
        assert!(
            shown.starts_with("typo.toml:5:1: unknown field `cdw`"),
            "{shown}"
        );
        assert!(shown.contains("5 | cdw = \"/srv\""), "{shown}");
    }

    #[test]
    fn a_wrong_type_is_reported_where_it_is() {
        let text = format!("{MINIMAL}cores = \"two\"\n");
        let e = parse(&text, "t.toml").unwrap_err();
        assert_eq!(e.place.map(|p| p.0), Some(6), "{e}");
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn broken_toml_is_reported_where_it_breaks() {
        let e = parse("title = \"t\nteaches = 1\n", "b.toml").unwrap_err();
        assert_eq!(e.place.map(|p| p.0), Some(1), "{e}");
    }

    #[test]
    fn every_semantic_mistake_of_a_file_is_reported_at_once() {
        let text = "title = \"t\"\nteaches = \"x\"\ncommand = \"uwsgi --http-socket :8000\"\n[machine]\ncwd = \"srv\"\ncores = 0\n[[clients]]\ncount = 0\n";
        let e = parse(text, "three.toml").unwrap_err();
        let shown = e.to_string();
        assert_eq!(e.more.len(), 2, "{shown}");
        assert!(
            shown.starts_with("three.toml:5:1: machine.cwd must be an absolute path"),
            "{shown}"
        );
        assert!(
            shown.contains("three.toml:6:1: machine.cores must be at least 1"),
            "{shown}"
        );
        assert!(
            shown.contains(
                "three.toml:8:1: [[clients]] #1: `count` and `requests` must be at least 1"
            ),
            "{shown}"
        );
    }

    #[test]
    fn semantic_mistakes_say_what_to_do() {
        let e = parse(&MINIMAL.replace("uwsgi", "gunicorn"), "c.toml").unwrap_err();
        assert!(
            e.message
                .contains("must start with `uwsgi` or `wsgilab serve`"),
            "{e}"
        );
        assert_eq!(e.place.map(|p| p.0), Some(3), "{e}");
        let e = parse(&MINIMAL.replace("/srv", "srv"), "c.toml").unwrap_err();
        assert!(e.message.contains("absolute"), "{e}");
        let text = format!("{MINIMAL}[expect]\noutcomes = {{ ok = 1 }}\n");
        let e = parse(&text, "c.toml").unwrap_err();
        assert!(e.message.contains("unknown outcome \"ok\""), "{e}");
        let text =
            format!("{MINIMAL}[[faults]]\nat_ms = 1\nsignal = \"SIGTERM\"\nto = \"worker x\"\n");
        let e = parse(&text, "c.toml").unwrap_err();
        assert!(
            e.message
                .contains("expected \"master\", \"worker N\" or \"all\""),
            "{e}"
        );
    }

    #[test]
    fn commands_are_split_as_a_shell_would() {
        assert_eq!(
            split_command("wsgilab serve --module 'my site.wsgi'").unwrap(),
            ["--module", "my site.wsgi"]
        );
        assert!(split_command("uwsgi --module 'unclosed").is_err());
        assert_eq!(split_command("uwsgi").unwrap(), Vec::<String>::new());
    }
}
