//! The import system, modelled on CPython 3.11's `importlib._bootstrap` and
//! `_bootstrap_external` over the scenario's files.
//!
//! - `sys.meta_path`: builtin and already-imported modules first (they cannot be shadowed),
//!   then the path finder.
//! - The path finder (`PathFinder.find_spec`) scans `sys.path` (or a package's `__path__`) in
//!   order. In each directory (`FileFinder.find_spec`) a package directory with `__init__`
//!   wins, then a module file (extension module, `.py`, `.pyc`); a directory without
//!   `__init__` is only a *namespace portion*, kept while the scan goes on. A regular package
//!   or module in any later entry still wins over the portions found before it; if none is
//!   found, the portions together make a namespace package.
//! - Relative entries (`.`, `src`) are resolved against the working directory when the entry
//!   is first used, and that directory is cached (`sys.path_importer_cache`), as CPython does.
//! - A module found is executed: its top-level statements (see [`source`]) are run in order,
//!   its own imports resolved in turn; a failure unwinds with one traceback frame per module.
//! - The standard library is a list of names, present in `prefix/lib/python3.X` without being
//!   in the scenario's files; its modules accept any attribute and any submodule.

use std::collections::BTreeMap;
use std::path::Path;

use super::expr::{self, Effect, Kind, Scope, Val};
use super::source::{parse_module, Handler, Node, Stmt};
use super::{ProcessView, PythonInstall};
use crate::files::FileTree;

/// One traceback entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub file: String,
    pub line: u32,
    pub function: String,
    /// The source line, stripped; `None` where Python has none to show (frozen modules).
    pub source: Option<String>,
    /// The `^^^` line under it, if any.
    pub carets: Option<String>,
}

/// What kind of exception, for `except` clauses and for the server's classification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrKind {
    /// `ModuleNotFoundError` with its `name` attribute (unset when raised by hand).
    ModuleNotFound(Option<String>),
    ImportError,
    Other,
}

/// A Python exception on its way up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PyErr {
    /// The class as the traceback's last line names it (`ModuleNotFoundError`,
    /// `django.core.exceptions.ImproperlyConfigured`).
    pub class: String,
    pub kind: ErrKind,
    pub message: String,
    /// Outermost first.
    pub frames: Vec<Frame>,
    /// The exception being handled when this one was raised (`__context__`).
    pub context: Option<Box<PyErr>>,
}

impl PyErr {
    pub fn module_not_found(message: String, name: &str) -> PyErr {
        PyErr {
            class: "ModuleNotFoundError".into(),
            kind: ErrKind::ModuleNotFound(Some(name.to_string())),
            message,
            frames: Vec::new(),
            context: None,
        }
    }

    pub fn import_error(message: String) -> PyErr {
        PyErr {
            class: "ImportError".into(),
            kind: ErrKind::ImportError,
            message,
            frames: Vec::new(),
            context: None,
        }
    }

    fn at(mut self, frame: Frame) -> PyErr {
        self.frames.insert(0, frame);
        self
    }

    /// `str(exc)` after the class: the traceback's last line.
    pub fn last_line(&self) -> String {
        if self.message.is_empty() {
            self.class.clone()
        } else {
            format!("{}: {}", self.class, self.message)
        }
    }

    /// The lines `traceback.format_exception` gives, with `outer` frames (where the import
    /// was started from) above this exception's own.
    pub fn format(&self, outer: &[Frame]) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(context) = &self.context {
            out.extend(context.format(&[]));
            out.push(String::new());
            out.push("During handling of the above exception, another exception occurred:".into());
            out.push(String::new());
        }
        let frames: Vec<&Frame> = outer.iter().chain(&self.frames).collect();
        if !frames.is_empty() {
            out.push("Traceback (most recent call last):".into());
            for f in frames {
                out.push(format!(
                    "  File \"{}\", line {}, in {}",
                    f.file, f.line, f.function
                ));
                if let Some(source) = &f.source {
                    out.push(format!("    {source}"));
                    if let Some(carets) = &f.carets {
                        out.push(format!("    {carets}"));
                    }
                }
            }
        }
        out.push(self.last_line());
        out
    }

    /// The classes this exception is an instance of, most specific first.
    fn ancestors(&self) -> Vec<&str> {
        let short = self.class.rsplit('.').next().unwrap_or(&self.class);
        let mut chain = vec![short];
        let mut current = short;
        while let Some(parent) = builtin_parent(current) {
            chain.push(parent);
            current = parent;
        }
        if !chain.contains(&"BaseException") {
            // A class of the app's own: assume it derives from Exception.
            chain.extend(["Exception", "BaseException"]);
        }
        chain
    }

    fn caught_by(&self, handler: &Handler) -> bool {
        match &handler.types {
            None => true,
            Some(types) => {
                let ancestors = self.ancestors();
                types.iter().any(|t| {
                    let short = t.rsplit('.').next().unwrap_or(t);
                    ancestors.contains(&short)
                })
            }
        }
    }
}

fn builtin_parent(class: &str) -> Option<&'static str> {
    Some(match class {
        "ModuleNotFoundError" => "ImportError",
        "NotImplementedError" | "RecursionError" => "RuntimeError",
        "KeyError" | "IndexError" => "LookupError",
        "FileNotFoundError" | "PermissionError" | "ConnectionError" | "TimeoutError"
        | "IsADirectoryError" | "NotADirectoryError" => "OSError",
        "UnicodeDecodeError" | "UnicodeEncodeError" => "ValueError",
        "ImportError" | "RuntimeError" | "LookupError" | "OSError" | "ValueError" | "TypeError"
        | "AttributeError" | "NameError" | "AssertionError" | "SyntaxError" | "ArithmeticError"
        | "EOFError" | "MemoryError" | "StopIteration" | "Warning" | "SystemError"
        | "BufferError" | "ReferenceError" => "Exception",
        "ZeroDivisionError" | "OverflowError" => "ArithmeticError",
        "Exception" | "KeyboardInterrupt" | "SystemExit" | "GeneratorExit" => "BaseException",
        _ => return None,
    })
}

/// A name a module binds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub line: u32,
    pub source: String,
    /// Whether the bound object can be called, where the model can tell.
    pub callable: Option<bool>,
}

/// An entry of `sys.modules`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    /// `__file__`.
    pub file: Option<String>,
    /// `__path__`: present for packages.
    pub search: Option<Vec<String>>,
    /// The model does not know this module's contents (stdlib, compiled): any attribute exists.
    pub open: bool,
    /// Executing (a circular import sees it half-done).
    pub initializing: bool,
    pub names: BTreeMap<String, Binding>,
    /// What the model knows of the values bound, for conditions and paths.
    pub values: BTreeMap<String, Val>,
}

impl Module {
    fn new(name: &str, file: Option<String>, search: Option<Vec<String>>, open: bool) -> Module {
        Module {
            name: name.to_string(),
            file,
            search,
            open,
            initializing: false,
            names: BTreeMap::new(),
            values: BTreeMap::new(),
        }
    }
}

/// How a module was found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Spec {
    /// Python source to execute.
    Source {
        file: String,
        search: Option<Vec<String>>,
    },
    /// Builtin, compiled or standard library: imports, contents unknown.
    Opaque {
        file: Option<String>,
        search: Option<Vec<String>>,
    },
    Namespace(Vec<String>),
}

enum Found {
    Spec(Spec),
    Portion(String),
}

/// The interpreter's import state: what survives between imports (and is copied by a fork).
#[derive(Clone, Debug, Default)]
pub struct ImportState {
    pub sys_path: Vec<String>,
    pub modules: BTreeMap<String, Module>,
    /// `sys.path_importer_cache`: a `sys.path` entry → the directory its finder searches.
    pub finders: BTreeMap<String, Option<String>>,
    pub prefix: String,
    pub base_prefix: String,
}

/// CPython's `_path_join`: parts without their trailing slashes, joined by `/`.
pub fn path_join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_end_matches('/'))
        .collect::<Vec<_>>()
        .join("/")
}

/// One import (or one `load_app`) in progress.
pub struct Importer<'a> {
    pub files: &'a FileTree,
    pub install: &'a PythonInstall,
    pub process: &'a dyn ProcessView,
    pub state: &'a mut ImportState,
    /// Modules executed from source, in order.
    pub executed: Vec<String>,
    /// The exceptions being handled by `except` blocks, innermost last.
    pub handling: Vec<PyErr>,
}

impl Importer<'_> {
    fn cwd(&self) -> String {
        self.process.cwd().display().to_string()
    }

    fn stdlib_dir(&self) -> String {
        self.install.stdlib_dir()
    }

    /// Whether `dir` is a standard-library package directory the files do not hold.
    fn virtual_stdlib_package(&self, dir: &str) -> bool {
        let stdlib = self.stdlib_dir();
        dir.strip_prefix(&stdlib)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|top| self.install.stdlib_packages.iter().any(|p| p == top))
    }

    fn is_dir(&self, dir: &str) -> bool {
        self.files.is_dir(Path::new(dir))
            || dir == self.stdlib_dir()
            || self.virtual_stdlib_package(dir)
    }

    fn is_file(&self, file: &str) -> bool {
        self.files.is_file(Path::new(file))
    }

    /// The directory a `sys.path` entry's finder searches (`FileFinder.path`), cached.
    fn finder_dir(&mut self, entry: &str) -> Option<String> {
        if let Some(cached) = self.state.finders.get(entry) {
            return cached.clone();
        }
        let cwd = self.cwd();
        let dir = if entry.is_empty() || entry == "." {
            cwd
        } else if entry.starts_with('/') {
            entry.to_string()
        } else {
            path_join(&[&cwd, entry])
        };
        let found = self.is_dir(&dir).then_some(dir);
        self.state.finders.insert(entry.to_string(), found.clone());
        found
    }

    /// `FileFinder.find_spec` in one directory.
    fn find_in_dir(&self, dir: &str, fullname: &str, tail: &str) -> Option<Found> {
        // FileFinder looks the name up in the directory's listing: `a/b` is no entry.
        if tail.is_empty() || tail.contains('/') {
            return None;
        }
        let suffixes = self.install.suffixes();
        let base = path_join(&[dir, tail]);
        let mut namespace = false;
        if self.files.is_dir(Path::new(&base)) {
            for (suffix, source) in &suffixes {
                let init = path_join(&[&base, &format!("__init__{suffix}")]);
                if self.is_file(&init) {
                    let search = Some(vec![base.clone()]);
                    return Some(Found::Spec(if *source {
                        Spec::Source { file: init, search }
                    } else {
                        Spec::Opaque {
                            file: Some(init),
                            search,
                        }
                    }));
                }
            }
            namespace = true;
        }
        for (suffix, source) in &suffixes {
            let file = path_join(&[dir, &format!("{tail}{suffix}")]);
            if self.is_file(&file) {
                return Some(Found::Spec(if *source {
                    Spec::Source { file, search: None }
                } else {
                    Spec::Opaque {
                        file: Some(file),
                        search: None,
                    }
                }));
            }
        }
        if namespace {
            return Some(Found::Portion(base));
        }
        // The standard library, which the scenario's files do not spell out.
        let top_level = !fullname.contains('.');
        if top_level && dir == self.stdlib_dir() {
            if self.install.stdlib_packages.iter().any(|p| p == tail) {
                return Some(Found::Spec(Spec::Opaque {
                    file: Some(path_join(&[&base, "__init__.py"])),
                    search: Some(vec![base]),
                }));
            }
            if self.install.stdlib_modules.iter().any(|m| m == tail) {
                return Some(Found::Spec(Spec::Opaque {
                    file: Some(format!("{base}.py")),
                    search: None,
                }));
            }
        }
        if !top_level && self.virtual_stdlib_package(dir) {
            return Some(Found::Spec(Spec::Opaque {
                file: Some(format!("{base}.py")),
                search: None,
            }));
        }
        None
    }

    /// `PathFinder.find_spec` (after the builtin importer).
    fn find_spec(&mut self, fullname: &str, parent_path: Option<Vec<String>>) -> Option<Spec> {
        let tail = fullname.rsplit('.').next().unwrap_or(fullname);
        if parent_path.is_none() && self.install.builtin_modules.iter().any(|b| b == fullname) {
            return Some(Spec::Opaque {
                file: None,
                search: None,
            });
        }
        let dirs: Vec<String> = match parent_path {
            Some(path) => path.into_iter().filter(|d| self.is_dir(d)).collect(),
            None => {
                let entries = self.state.sys_path.clone();
                entries.iter().filter_map(|e| self.finder_dir(e)).collect()
            }
        };
        let mut portions = Vec::new();
        for dir in dirs {
            match self.find_in_dir(&dir, fullname, tail) {
                Some(Found::Spec(spec)) => return Some(spec),
                Some(Found::Portion(p)) => portions.push(p),
                None => {}
            }
        }
        (!portions.is_empty()).then_some(Spec::Namespace(portions))
    }

    /// `importlib._bootstrap._find_and_load`: makes sure `name` (and its parents) are in
    /// `sys.modules`.
    pub fn import(&mut self, name: &str) -> Result<(), PyErr> {
        if self.state.modules.contains_key(name) {
            return Ok(());
        }
        let (parent, tail) = match name.rsplit_once('.') {
            Some((parent, tail)) => (Some(parent), tail),
            None => (None, name),
        };
        let mut path = None;
        if let Some(parent) = parent {
            self.import(parent)?;
            // Importing the parent may have imported this module too.
            if self.state.modules.contains_key(name) {
                return Ok(());
            }
            match &self.state.modules[parent].search {
                Some(search) => path = Some(search.clone()),
                None => {
                    return Err(PyErr::module_not_found(
                        format!("No module named '{name}'; '{parent}' is not a package"),
                        name,
                    ))
                }
            }
        }
        let Some(spec) = self.find_spec(name, path) else {
            return Err(PyErr::module_not_found(
                format!("No module named '{name}'"),
                name,
            ));
        };
        self.load(name, spec)?;
        if let Some(parent) = parent {
            if let Some(p) = self.state.modules.get_mut(parent) {
                p.names.insert(
                    tail.to_string(),
                    Binding {
                        line: 0,
                        source: String::new(),
                        callable: Some(false),
                    },
                );
                p.values
                    .insert(tail.to_string(), Val::Ref(name.to_string()));
            }
        }
        Ok(())
    }

    fn load(&mut self, name: &str, spec: Spec) -> Result<(), PyErr> {
        match spec {
            Spec::Opaque { file, search } => {
                self.state
                    .modules
                    .insert(name.to_string(), Module::new(name, file, search, true));
                Ok(())
            }
            Spec::Namespace(portions) => {
                self.state.modules.insert(
                    name.to_string(),
                    Module::new(name, None, Some(portions), false),
                );
                Ok(())
            }
            Spec::Source { file, search } => {
                let source = self
                    .files
                    .read(Path::new(&file))
                    .unwrap_or_default()
                    .to_string();
                self.exec_source(name, file, search, &source)
            }
        }
    }

    /// Executes a module from source, registered in `sys.modules` while it runs; a failed
    /// module is taken out again.
    pub fn exec_source(
        &mut self,
        name: &str,
        file: String,
        search: Option<Vec<String>>,
        source: &str,
    ) -> Result<(), PyErr> {
        let mut module = Module::new(name, Some(file), search, false);
        module.initializing = true;
        self.state.modules.insert(name.to_string(), module);
        let nodes = parse_module(source);
        let result = self.exec_block(name, &nodes);
        match result {
            Ok(()) => {
                if let Some(m) = self.state.modules.get_mut(name) {
                    m.initializing = false;
                }
                self.executed.push(name.to_string());
                Ok(())
            }
            Err(e) => {
                self.state.modules.remove(name);
                Err(e)
            }
        }
    }

    fn frame(&self, module: &str, node: &Node) -> Frame {
        Frame {
            file: self.state.modules[module].file.clone().unwrap_or_default(),
            line: node.line,
            function: "<module>".into(),
            source: Some(node.source.clone()),
            carets: node.carets.clone(),
        }
    }

    fn exec_block(&mut self, module: &str, nodes: &[Node]) -> Result<(), PyErr> {
        for node in nodes {
            match &node.stmt {
                Stmt::If(branches) => {
                    for (condition, body) in branches {
                        let taken = match condition {
                            // Undecidable conditions are taken as true.
                            Some(c) => self.condition(module, c).unwrap_or(true),
                            None => true,
                        };
                        if taken {
                            self.exec_block(module, body)?;
                            break;
                        }
                    }
                }
                Stmt::Try {
                    body,
                    handlers,
                    orelse,
                    finally,
                } => {
                    let mut outcome = self.exec_block(module, body);
                    if outcome.is_ok() {
                        outcome = self.exec_block(module, orelse);
                    } else if let Err(caught) = &outcome {
                        if let Some(handler) = handlers.iter().find(|h| caught.caught_by(h)) {
                            let caught = caught.clone();
                            self.handling.push(caught.clone());
                            let handled = self.exec_block(module, &handler.body);
                            self.handling.pop();
                            outcome = handled.map_err(|mut e| {
                                if e == caught {
                                    // A bare `raise`: the same exception goes on.
                                    return e;
                                }
                                if e.context.is_none() {
                                    e.context = Some(Box::new(caught));
                                }
                                e
                            });
                        }
                    }
                    let after = self.exec_block(module, finally);
                    match (outcome, after) {
                        (Err(pending), Err(mut e)) => {
                            if e.context.is_none() {
                                e.context = Some(Box::new(pending));
                            }
                            return Err(e);
                        }
                        (Ok(()), Err(e)) | (Err(e), Ok(())) => return Err(e),
                        (Ok(()), Ok(())) => {}
                    }
                }
                Stmt::Block(body) => self.exec_block(module, body)?,
                // A bare `raise` in an `except` block: the exception being handled goes on.
                Stmt::Raise(None) if !self.handling.is_empty() => {
                    return Err(self.handling.last().cloned().expect("handling"))
                }
                _ => self
                    .exec_simple(module, node)
                    .map_err(|e| e.at(self.frame(module, node)))?,
            }
        }
        Ok(())
    }

    fn bind(&mut self, module: &str, node: &Node, name: &str, callable: Option<bool>, value: Val) {
        if let Some(m) = self.state.modules.get_mut(module) {
            m.names.insert(
                name.to_string(),
                Binding {
                    line: node.line,
                    source: node.source.clone(),
                    callable,
                },
            );
            m.values.insert(name.to_string(), value);
        }
    }

    fn exec_simple(&mut self, module: &str, node: &Node) -> Result<(), PyErr> {
        match &node.stmt {
            Stmt::Import(names) => {
                for (dotted, alias) in names {
                    self.import(dotted)?;
                    match alias {
                        Some(alias) => {
                            self.bind(module, node, alias, Some(false), Val::Ref(dotted.clone()))
                        }
                        None => {
                            let top = dotted.split('.').next().unwrap_or(dotted);
                            self.bind(module, node, top, Some(false), Val::Ref(top.to_string()))
                        }
                    }
                }
            }
            Stmt::From {
                level,
                module: from,
                names,
            } => self.exec_from(module, node, *level, from, names)?,
            Stmt::Def(name) => self.bind(
                module,
                node,
                name,
                Some(true),
                Val::Ref(format!("{module}.{name}")),
            ),
            Stmt::Class(name) => self.bind(
                module,
                node,
                name,
                Some(true),
                Val::Ref(format!("{module}.{name}")),
            ),
            Stmt::Assign { targets, value } => {
                let v = if value.is_empty() {
                    Val::Unknown
                } else {
                    self.eval(module, value).0
                };
                for target in targets {
                    self.bind(module, node, target, v.callable(), v.clone());
                }
            }
            Stmt::Raise(expr) => return Err(self.raise(module, expr.as_deref())),
            Stmt::Expr(text) => {
                let (_, effects) = self.eval(module, text);
                for effect in effects {
                    let path = &mut self.state.sys_path;
                    match effect {
                        Effect::SysPathInsert(i, p) => {
                            let len = path.len() as i64;
                            let at = if i < 0 { (len + i).max(0) } else { i.min(len) };
                            path.insert(at as usize, p);
                        }
                        Effect::SysPathAppend(p) => path.push(p),
                    }
                }
            }
            Stmt::If(_) | Stmt::Try { .. } | Stmt::Block(_) | Stmt::Other => {}
        }
        Ok(())
    }

    /// `__package__` of a module: itself for a package, its parent otherwise.
    fn package_of(&self, module: &str) -> String {
        let m = &self.state.modules[module];
        if m.search.is_some() {
            module.to_string()
        } else {
            module
                .rsplit_once('.')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default()
        }
    }

    /// `importlib._bootstrap._resolve_name` and its sanity checks.
    fn resolve(&self, module: &str, level: usize, name: &str) -> Result<String, PyErr> {
        if level == 0 {
            return Ok(name.to_string());
        }
        let package = self.package_of(module);
        if package.is_empty() {
            return Err(PyErr::import_error(
                "attempted relative import with no known parent package".into(),
            ));
        }
        let bits: Vec<&str> = package.rsplitn(level, '.').collect();
        if bits.len() < level {
            return Err(PyErr::import_error(
                "attempted relative import beyond top-level package".into(),
            ));
        }
        let base = bits[bits.len() - 1];
        Ok(if name.is_empty() {
            base.to_string()
        } else {
            format!("{base}.{name}")
        })
    }

    fn has_attr(&self, module: &str, name: &str) -> bool {
        self.state
            .modules
            .get(module)
            // A module `__getattr__` (PEP 562) answers for any name.
            .is_some_and(|m| {
                m.open || m.names.contains_key(name) || m.names.contains_key("__getattr__")
            })
    }

    fn exec_from(
        &mut self,
        module: &str,
        node: &Node,
        level: usize,
        from: &str,
        names: &[(String, Option<String>)],
    ) -> Result<(), PyErr> {
        let target = self.resolve(module, level, from)?;
        self.import(&target)?;
        // `_handle_fromlist`: for a package, names that are not attributes may be submodules.
        if self.state.modules[&target].search.is_some() {
            for (name, _) in names {
                if name == "*" || self.has_attr(&target, name) {
                    continue;
                }
                let sub = format!("{target}.{name}");
                match self.import(&sub) {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrKind::ModuleNotFound(Some(sub.clone())) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for (name, alias) in names {
            let source = &self.state.modules[&target];
            if name == "*" {
                let open = source.open;
                // `__all__`, if the model knows it; else the names without a leading `_`.
                let all: Option<Vec<String>> = match source.values.get("__all__") {
                    Some(Val::Tuple(items)) => items
                        .iter()
                        .map(|i| match i {
                            Val::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => None,
                };
                let public: Vec<(String, Binding, Val)> = source
                    .names
                    .iter()
                    .filter(|(n, _)| match &all {
                        Some(all) => all.contains(n),
                        None => !n.starts_with('_'),
                    })
                    .map(|(n, b)| {
                        let v = source.values.get(n).cloned().unwrap_or(Val::Unknown);
                        (n.clone(), b.clone(), v)
                    })
                    .collect();
                for (n, b, v) in public {
                    self.bind(module, node, &n, b.callable, v);
                }
                if open {
                    if let Some(m) = self.state.modules.get_mut(module) {
                        m.open = true;
                    }
                }
                continue;
            }
            let sub = format!("{target}.{name}");
            let (callable, value) = if self.has_attr(&target, name) {
                (
                    source.names.get(name).and_then(|b| b.callable),
                    source
                        .values
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| Val::Ref(sub.clone())),
                )
            } else if self.state.modules.contains_key(&sub) {
                (Some(false), Val::Ref(sub.clone()))
            } else {
                let location = source.file.clone();
                let message = match location {
                    None => format!("cannot import name '{name}' from '{target}' (unknown location)"),
                    Some(file) if source.initializing => format!(
                        "cannot import name '{name}' from partially initialized module '{target}' (most likely due to a circular import) ({file})"
                    ),
                    Some(file) => format!("cannot import name '{name}' from '{target}' ({file})"),
                };
                return Err(PyErr::import_error(message));
            };
            let bound = alias.as_deref().unwrap_or(name);
            self.bind(module, node, bound, callable, value);
        }
        Ok(())
    }

    fn raise(&self, module: &str, expr: Option<&str>) -> PyErr {
        let Some(expr) = expr else {
            return PyErr {
                class: "RuntimeError".into(),
                kind: ErrKind::Other,
                message: "No active exception to reraise".into(),
                frames: Vec::new(),
                context: None,
            };
        };
        // `raise X(...) from e`: the cause is not modelled.
        let expr = match super::source::find_top_level(expr, |_, _, t| t.starts_with(" from ")) {
            Some(at) => &expr[..at],
            None => expr,
        }
        .trim();
        let (class_expr, args) = match expr.find('(') {
            Some(open) if expr.ends_with(')') => (&expr[..open], &expr[open + 1..expr.len() - 1]),
            _ => (expr, ""),
        };
        let class_expr = class_expr.trim();
        let message = match self.eval(module, args).0 {
            Val::Str(s) => s,
            _ => args.trim().to_string(),
        };
        let locals = &self.state.modules[module].values;
        let class = if builtin_parent(class_expr).is_some() || class_expr == "BaseException" {
            class_expr.to_string()
        } else {
            match locals.get(class_expr.split('.').next().unwrap_or(class_expr)) {
                Some(Val::Ref(r)) if !class_expr.contains('.') => r.clone(),
                Some(Val::Ref(r)) => {
                    format!("{r}{}", &class_expr[class_expr.find('.').unwrap_or(0)..])
                }
                _ => class_expr.to_string(),
            }
        };
        let short = class.rsplit('.').next().unwrap_or(&class);
        let kind = match short {
            "ModuleNotFoundError" => ErrKind::ModuleNotFound(None),
            "ImportError" => ErrKind::ImportError,
            _ => ErrKind::Other,
        };
        PyErr {
            class,
            kind,
            message,
            frames: Vec::new(),
            context: None,
        }
    }

    fn eval(&self, module: &str, text: &str) -> (Val, Vec<Effect>) {
        let mut effects = Vec::new();
        let value = self.with_scope(module, |scope| expr::eval(text, scope, &mut effects));
        (value, effects)
    }

    fn condition(&self, module: &str, text: &str) -> Option<bool> {
        self.with_scope(module, |scope| expr::eval_condition(text, scope))
    }

    fn with_scope<T>(&self, module: &str, f: impl FnOnce(&Scope<'_>) -> T) -> T {
        let m = &self.state.modules[module];
        let cwd = self.cwd();
        let env = |name: &str| self.process.env(name);
        let exists = |path: &str, kind: Kind| {
            let p = Path::new(path);
            match kind {
                Kind::Dir => self.files.is_dir(p),
                Kind::File => self.files.is_file(p),
                Kind::Any => self.files.is_dir(p) || self.files.is_file(p),
            }
        };
        let scope = Scope {
            module,
            file: m.file.as_deref(),
            cwd: &cwd,
            version: self.install.version_triple(),
            prefix: &self.state.prefix,
            base_prefix: &self.state.base_prefix,
            locals: &m.values,
            env: &env,
            exists: &exists,
        };
        f(&scope)
    }
}
