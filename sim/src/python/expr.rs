//! A tiny evaluator for the expressions that decide what a module does at import time:
//! `if` conditions (`sys.version_info >= (3, 8)`, `os.environ.get("X")`, `TYPE_CHECKING`,
//! `__name__ == "__main__"`) and the paths handed to `sys.path.insert`/`append`
//! (`os.path.dirname(os.path.abspath(__file__))`, `Path(__file__).resolve().parent.parent`).
//!
//! Anything else evaluates to [`Val::Unknown`]; callers decide what unknown means (a condition
//! that cannot be decided is taken as true; an unknown path is not added).

use std::collections::BTreeMap;

/// A value, as far as the model can know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    Str(String),
    /// A `pathlib.Path`.
    Path(String),
    Int(i64),
    Bool(bool),
    None,
    Tuple(Vec<Val>),
    /// A module, function or attribute known by its dotted name (`os.path.join`).
    Ref(String),
    /// A method bound to a value (`Path(...).resolve`).
    Method(Box<Val>, String),
    Unknown,
}

impl Val {
    /// Python's truth value, if known.
    pub fn truth(&self) -> Option<bool> {
        match self {
            Val::Str(s) => Some(!s.is_empty()),
            Val::Path(_) | Val::Ref(_) | Val::Method(..) => Some(true),
            Val::Int(n) => Some(*n != 0),
            Val::Bool(b) => Some(*b),
            Val::None => Some(false),
            Val::Tuple(items) => Some(!items.is_empty()),
            Val::Unknown => None,
        }
    }

    /// The text of a str or a path.
    pub fn as_path_text(&self) -> Option<String> {
        match self {
            Val::Str(s) | Val::Path(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// Whether Python could call it: `None`, numbers, strings and tuples cannot.
    pub fn callable(&self) -> Option<bool> {
        match self {
            Val::Str(_) | Val::Path(_) | Val::Int(_) | Val::Bool(_) | Val::None | Val::Tuple(_) => {
                Some(false)
            }
            _ => None,
        }
    }
}

/// A side effect an expression statement had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    SysPathInsert(i64, String),
    SysPathAppend(String),
}

/// What an expression can see.
pub struct Scope<'a> {
    pub module: &'a str,
    pub file: Option<&'a str>,
    pub cwd: &'a str,
    pub version: (u32, u32, u32),
    pub prefix: &'a str,
    pub base_prefix: &'a str,
    pub locals: &'a BTreeMap<String, Val>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub exists: &'a dyn Fn(&str, Kind) -> bool,
}

/// What `os.path.exists`/`isdir`/`isfile` ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Any,
    Dir,
    File,
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Name(String),
    /// A string literal; `None` for an f-string with replacement fields.
    Str(Option<String>),
    Num(Option<i64>),
    Op(String),
}

fn tokenize(text: &str) -> Option<Vec<Tok>> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // String prefixes: r, b, u, f and their pairs.
        let mut j = i;
        while j < chars.len() && j - i < 2 && "rRbBuUfF".contains(chars[j]) {
            j += 1;
        }
        if j < chars.len() && (chars[j] == '\'' || chars[j] == '"') {
            let prefix: String = chars[i..j].iter().collect::<String>().to_lowercase();
            let quote = chars[j];
            let triple = chars.get(j + 1) == Some(&quote) && chars.get(j + 2) == Some(&quote);
            let mut k = j + if triple { 3 } else { 1 };
            let mut value = String::new();
            loop {
                let d = *chars.get(k)?;
                if d == '\\' {
                    let e = *chars.get(k + 1)?;
                    if prefix.contains('r') {
                        value.push('\\');
                        value.push(e);
                    } else {
                        match e {
                            'n' => value.push('\n'),
                            't' => value.push('\t'),
                            '\n' => {}
                            other => value.push(other),
                        }
                    }
                    k += 2;
                    continue;
                }
                if d == quote
                    && (!triple
                        || (chars.get(k + 1) == Some(&quote) && chars.get(k + 2) == Some(&quote)))
                {
                    k += if triple { 3 } else { 1 };
                    break;
                }
                value.push(d);
                k += 1;
            }
            let formatted = prefix.contains('f') && value.contains('{');
            // Adjacent literals concatenate.
            match toks.last_mut() {
                Some(Tok::Str(Some(prev))) if !formatted => prev.push_str(&value),
                Some(Tok::Str(prev)) if formatted => *prev = None,
                _ => toks.push(Tok::Str((!formatted).then_some(value))),
            }
            i = k;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut k = i;
            while k < chars.len() && (chars[k].is_alphanumeric() || chars[k] == '_') {
                k += 1;
            }
            toks.push(Tok::Name(chars[i..k].iter().collect()));
            i = k;
            continue;
        }
        if c.is_ascii_digit() {
            let mut k = i;
            while k < chars.len() && (chars[k].is_ascii_alphanumeric() || chars[k] == '_') {
                k += 1;
            }
            let mut float = false;
            if chars.get(k) == Some(&'.') && chars.get(k + 1).is_some_and(|d| d.is_ascii_digit()) {
                float = true;
                k += 1;
                while k < chars.len() && chars[k].is_ascii_digit() {
                    k += 1;
                }
            }
            let digits: String = chars[i..k].iter().filter(|&&d| d != '_').collect();
            toks.push(Tok::Num(if float { None } else { digits.parse().ok() }));
            i = k;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        if ["==", "!=", ">=", "<=", "//", "**", ":="].contains(&two.as_str()) {
            toks.push(Tok::Op(two));
            i += 2;
            continue;
        }
        toks.push(Tok::Op(c.to_string()));
        i += 1;
    }
    Some(toks)
}

/// The syntax tree of the subset.
#[derive(Clone, Debug)]
enum Expr {
    Name(String),
    Lit(Val),
    Tuple(Vec<Expr>),
    Attr(Box<Expr>, String),
    Call(Box<Expr>, Vec<Expr>),
    Index(Box<Expr>, Box<Expr>),
    /// `e[start:end]`.
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    Bin(Box<Expr>, String, Box<Expr>),
    Not(Box<Expr>),
    Unknown,
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if o == op)
    }

    fn is_name(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Tok::Name(n)) if n == name)
    }

    fn eat_op(&mut self, op: &str) -> bool {
        let yes = self.is_op(op);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn expr(&mut self) -> Option<Expr> {
        let mut left = self.and()?;
        while self.is_name("or") {
            self.at += 1;
            let right = self.and()?;
            left = Expr::Bin(Box::new(left), "or".into(), Box::new(right));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Expr> {
        let mut left = self.not()?;
        while self.is_name("and") {
            self.at += 1;
            let right = self.not()?;
            left = Expr::Bin(Box::new(left), "and".into(), Box::new(right));
        }
        Some(left)
    }

    fn not(&mut self) -> Option<Expr> {
        if self.is_name("not") {
            self.at += 1;
            return Some(Expr::Not(Box::new(self.not()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Option<Expr> {
        let left = self.arith()?;
        let op = match self.peek() {
            Some(Tok::Op(o)) if ["==", "!=", ">=", "<=", ">", "<"].contains(&o.as_str()) => {
                o.clone()
            }
            Some(Tok::Name(n)) if n == "in" => "in".into(),
            Some(Tok::Name(n)) if n == "not" => {
                if matches!(self.toks.get(self.at + 1), Some(Tok::Name(m)) if m == "in") {
                    self.at += 1;
                    "not in".into()
                } else {
                    return Some(left);
                }
            }
            Some(Tok::Name(n)) if n == "is" => {
                if matches!(self.toks.get(self.at + 1), Some(Tok::Name(m)) if m == "not") {
                    self.at += 1;
                    "is not".into()
                } else {
                    "is".into()
                }
            }
            _ => return Some(left),
        };
        self.at += 1;
        let right = self.arith()?;
        Some(Expr::Bin(Box::new(left), op, Box::new(right)))
    }

    fn arith(&mut self) -> Option<Expr> {
        let mut left = self.postfix()?;
        loop {
            let op = match self.peek() {
                Some(Tok::Op(o)) if ["/", "+", "-", "*", "%", "//"].contains(&o.as_str()) => {
                    o.clone()
                }
                _ => return Some(left),
            };
            self.at += 1;
            let right = self.postfix()?;
            left = Expr::Bin(Box::new(left), op, Box::new(right));
        }
    }

    fn postfix(&mut self) -> Option<Expr> {
        let mut e = self.atom()?;
        loop {
            if self.eat_op(".") {
                match self.peek().cloned() {
                    Some(Tok::Name(n)) => {
                        self.at += 1;
                        e = Expr::Attr(Box::new(e), n);
                    }
                    _ => return None,
                }
            } else if self.eat_op("(") {
                let mut args = Vec::new();
                while !self.eat_op(")") {
                    // Keyword arguments and *args: not modelled.
                    let keyword = matches!(self.peek(), Some(Tok::Name(_)))
                        && matches!(self.toks.get(self.at + 1), Some(Tok::Op(o)) if o == "=");
                    if keyword || self.is_op("*") || self.is_op("**") {
                        self.skip_arg();
                        args.push(Expr::Unknown);
                    } else {
                        args.push(self.expr()?);
                    }
                    if !self.eat_op(",") && !self.is_op(")") {
                        return None;
                    }
                }
                e = Expr::Call(Box::new(e), args);
            } else if self.eat_op("[") {
                let start = if self.is_op(":") {
                    None
                } else {
                    Some(self.expr()?)
                };
                if self.eat_op(":") {
                    let end = if self.is_op("]") {
                        None
                    } else {
                        Some(self.expr()?)
                    };
                    if !self.eat_op("]") {
                        return None;
                    }
                    e = Expr::Slice(Box::new(e), start.map(Box::new), end.map(Box::new));
                    continue;
                }
                if !self.eat_op("]") {
                    return None;
                }
                e = Expr::Index(Box::new(e), Box::new(start?));
            } else {
                return Some(e);
            }
        }
    }

    fn skip_arg(&mut self) {
        let mut depth = 0usize;
        while let Some(tok) = self.peek() {
            match tok {
                Tok::Op(o) if (o == "," || o == ")") && depth == 0 => return,
                Tok::Op(o) if o == "(" || o == "[" || o == "{" => depth += 1,
                Tok::Op(o) if o == ")" || o == "]" || o == "}" => depth -= 1,
                _ => {}
            }
            self.at += 1;
        }
    }

    fn atom(&mut self) -> Option<Expr> {
        let tok = self.peek()?.clone();
        self.at += 1;
        match tok {
            Tok::Name(n) => Some(match n.as_str() {
                "True" => Expr::Lit(Val::Bool(true)),
                "False" => Expr::Lit(Val::Bool(false)),
                "None" => Expr::Lit(Val::None),
                "lambda" => return None,
                _ => Expr::Name(n),
            }),
            Tok::Str(s) => Some(Expr::Lit(s.map_or(Val::Unknown, Val::Str))),
            Tok::Num(n) => Some(Expr::Lit(n.map_or(Val::Unknown, Val::Int))),
            Tok::Op(o) if o == "-" => {
                let e = self.postfix()?;
                Some(Expr::Bin(
                    Box::new(Expr::Lit(Val::Int(0))),
                    "-".into(),
                    Box::new(e),
                ))
            }
            Tok::Op(o) if o == "(" || o == "[" => {
                let close = if o == "(" { ")" } else { "]" };
                let mut items = Vec::new();
                let mut tuple = o == "[";
                while !self.eat_op(close) {
                    items.push(self.expr()?);
                    if self.eat_op(",") {
                        tuple = true;
                    } else if !self.is_op(close) {
                        return None;
                    }
                }
                if !tuple && items.len() == 1 {
                    items.pop()
                } else {
                    Some(Expr::Tuple(items))
                }
            }
            _ => None,
        }
    }
}

fn parse(text: &str) -> Expr {
    let Some(toks) = tokenize(text) else {
        return Expr::Unknown;
    };
    let mut parser = Parser { toks, at: 0 };
    match parser.expr() {
        Some(e) if parser.at == parser.toks.len() => e,
        _ => Expr::Unknown,
    }
}

/// Evaluates an expression; records `sys.path` edits in `effects`.
pub fn eval(text: &str, scope: &Scope<'_>, effects: &mut Vec<Effect>) -> Val {
    Evaluator { scope, effects }.eval(&parse(text))
}

struct Evaluator<'s, 'a> {
    scope: &'s Scope<'a>,
    effects: &'s mut Vec<Effect>,
}

impl Evaluator<'_, '_> {
    fn eval(&mut self, e: &Expr) -> Val {
        match e {
            Expr::Lit(v) => v.clone(),
            Expr::Unknown => Val::Unknown,
            Expr::Name(n) => self.name(n),
            Expr::Tuple(items) => Val::Tuple(items.iter().map(|i| self.eval(i)).collect()),
            Expr::Attr(base, attr) => {
                let base = self.eval(base);
                self.attr(base, attr)
            }
            Expr::Call(f, args) => {
                let f = self.eval(f);
                let args: Vec<Val> = args.iter().map(|a| self.eval(a)).collect();
                self.call(f, args)
            }
            Expr::Index(base, index) => {
                let base = self.eval(base);
                let index = self.eval(index);
                self.index(base, index)
            }
            Expr::Slice(base, start, end) => {
                let base = self.eval(base);
                let mut bound = |b: &Option<Box<Expr>>| match b {
                    None => Some(None),
                    Some(e) => match self.eval(e) {
                        Val::Int(n) => Some(Some(n)),
                        _ => None,
                    },
                };
                match (base, bound(start), bound(end)) {
                    (Val::Tuple(items), Some(start), Some(end)) => {
                        let len = items.len() as i64;
                        let clamp =
                            |n: i64| (if n < 0 { len + n } else { n }).clamp(0, len) as usize;
                        let (from, to) = (clamp(start.unwrap_or(0)), clamp(end.unwrap_or(len)));
                        Val::Tuple(items.get(from..to.max(from)).unwrap_or_default().to_vec())
                    }
                    _ => Val::Unknown,
                }
            }
            Expr::Not(inner) => match self.eval(inner).truth() {
                Some(b) => Val::Bool(!b),
                None => Val::Unknown,
            },
            Expr::Bin(l, op, r) => {
                let l = self.eval(l);
                if op == "and" || op == "or" {
                    return match (l.truth(), op.as_str()) {
                        (Some(false), "and") | (Some(true), "or") => l,
                        (Some(_), _) => self.eval(r),
                        (None, _) => match (self.eval(r).truth(), op.as_str()) {
                            (Some(false), "and") => Val::Bool(false),
                            (Some(true), "or") => Val::Bool(true),
                            _ => Val::Unknown,
                        },
                    };
                }
                let r = self.eval(r);
                binary(l, op, r)
            }
        }
    }

    fn name(&self, n: &str) -> Val {
        if let Some(v) = self.scope.locals.get(n) {
            return match v {
                Val::Ref(r) => self.constant(r),
                other => other.clone(),
            };
        }
        match n {
            "__file__" => self
                .scope
                .file
                .map_or(Val::Unknown, |f| Val::Str(f.to_string())),
            "__name__" => Val::Str(self.scope.module.to_string()),
            // Used without their import in sight (it may be in a block the model skipped).
            "str" | "os" | "sys" | "pathlib" | "typing" => Val::Ref(n.to_string()),
            "Path" => Val::Ref("pathlib.Path".into()),
            "TYPE_CHECKING" => Val::Bool(false),
            _ => Val::Unknown,
        }
    }

    fn attr(&self, base: Val, attr: &str) -> Val {
        match base {
            Val::Ref(r) => self.constant(&format!("{r}.{attr}")),
            Val::Path(p) => match attr {
                "parent" => Val::Path(path_parent(&p)),
                "name" => Val::Str(p.rsplit('/').next().unwrap_or_default().to_string()),
                _ => Val::Method(Box::new(Val::Path(p)), attr.to_string()),
            },
            Val::Tuple(items) if attr == "major" || attr == "minor" => items
                .get(usize::from(attr == "minor"))
                .cloned()
                .unwrap_or(Val::Unknown),
            Val::Str(s) => Val::Method(Box::new(Val::Str(s)), attr.to_string()),
            _ => Val::Unknown,
        }
    }

    /// The value of a dotted name the model knows (`sys.platform`), or a reference to it.
    fn constant(&self, full: &str) -> Val {
        let (major, minor, micro) = self.scope.version;
        match canonical(full).as_str() {
            "sys.platform" => Val::Str("linux".into()),
            "sys.version_info" => Val::Tuple(vec![
                Val::Int(major.into()),
                Val::Int(minor.into()),
                Val::Int(micro.into()),
                Val::Str("final".into()),
                Val::Int(0),
            ]),
            "sys.version_info.major" => Val::Int(major.into()),
            "sys.version_info.minor" => Val::Int(minor.into()),
            "sys.prefix" => Val::Str(self.scope.prefix.into()),
            "sys.base_prefix" => Val::Str(self.scope.base_prefix.into()),
            "typing.TYPE_CHECKING" => Val::Bool(false),
            "os.sep" => Val::Str("/".into()),
            "os.curdir" => Val::Str(".".into()),
            "os.name" => Val::Str("posix".into()),
            _ => Val::Ref(full.to_string()),
        }
    }

    fn index(&self, base: Val, index: Val) -> Val {
        match (base, index) {
            (Val::Tuple(items), Val::Int(i)) => {
                let i = if i < 0 { items.len() as i64 + i } else { i };
                usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i).cloned())
                    .unwrap_or(Val::Unknown)
            }
            (Val::Method(path, m), Val::Int(n)) if m == "parents" => match *path {
                Val::Path(mut p) => {
                    for _ in 0..=n {
                        p = path_parent(&p);
                    }
                    Val::Path(p)
                }
                _ => Val::Unknown,
            },
            (Val::Ref(r), Val::Str(key)) if canonical(&r) == "os.environ" => {
                (self.scope.env)(&key).map_or(Val::Unknown, Val::Str)
            }
            _ => Val::Unknown,
        }
    }

    fn call(&mut self, f: Val, args: Vec<Val>) -> Val {
        let text = |i: usize| args.get(i).and_then(Val::as_path_text);
        match f {
            Val::Ref(r) => match canonical(&r).as_str() {
                "os.path.dirname" => text(0).map_or(Val::Unknown, |p| Val::Str(dirname(&p))),
                "os.path.basename" => text(0).map_or(Val::Unknown, |p| {
                    Val::Str(p.rsplit('/').next().unwrap_or_default().to_string())
                }),
                "os.path.abspath" | "os.path.realpath" => {
                    text(0).map_or(Val::Unknown, |p| Val::Str(self.abspath(&p)))
                }
                "os.path.normpath" => text(0).map_or(Val::Unknown, |p| Val::Str(normpath(&p))),
                "os.path.join" => {
                    let parts: Option<Vec<String>> = args.iter().map(Val::as_path_text).collect();
                    parts.map_or(Val::Unknown, |parts| Val::Str(join(&parts)))
                }
                "os.path.exists" | "os.path.isdir" | "os.path.isfile" => {
                    let kind = match r.rsplit('.').next() {
                        Some("isdir") => Kind::Dir,
                        Some("isfile") => Kind::File,
                        _ => Kind::Any,
                    };
                    text(0).map_or(Val::Unknown, |p| {
                        Val::Bool((self.scope.exists)(&self.abspath(&p), kind))
                    })
                }
                "os.getcwd" => Val::Str(self.scope.cwd.to_string()),
                "os.fspath" | "str" => match args.first() {
                    Some(Val::Str(s) | Val::Path(s)) => Val::Str(s.clone()),
                    Some(Val::Int(n)) => Val::Str(n.to_string()),
                    _ => Val::Unknown,
                },
                "pathlib.Path" | "pathlib.PurePath" | "pathlib.PosixPath" => {
                    let parts: Option<Vec<String>> = args.iter().map(Val::as_path_text).collect();
                    match parts {
                        Some(parts) if parts.is_empty() => Val::Path(".".into()),
                        Some(parts) => Val::Path(pure(&join(&parts))),
                        None => Val::Unknown,
                    }
                }
                "os.environ.get" | "os.getenv" => match args.first() {
                    Some(Val::Str(key)) => (self.scope.env)(key)
                        .map(Val::Str)
                        .unwrap_or_else(|| args.get(1).cloned().unwrap_or(Val::None)),
                    _ => Val::Unknown,
                },
                "sys.path.insert" => {
                    if let (Some(Val::Int(i)), Some(p)) = (args.first(), text(1)) {
                        self.effects.push(Effect::SysPathInsert(*i, p));
                    }
                    Val::None
                }
                "sys.path.append" => {
                    if let Some(p) = text(0) {
                        self.effects.push(Effect::SysPathAppend(p));
                    }
                    Val::None
                }
                _ => Val::Unknown,
            },
            Val::Method(base, m) => match (*base, m.as_str()) {
                (Val::Path(p), "resolve") => Val::Path(normpath(&self.abspath(&p))),
                (Val::Path(p), "absolute") => Val::Path(if p.starts_with('/') {
                    p
                } else {
                    pure(&join(&[self.scope.cwd.to_string(), p]))
                }),
                (Val::Path(p), "joinpath") => {
                    let mut parts = vec![p];
                    for a in &args {
                        match a.as_path_text() {
                            Some(t) => parts.push(t),
                            None => return Val::Unknown,
                        }
                    }
                    Val::Path(pure(&join(&parts)))
                }
                (Val::Path(p), "exists" | "is_dir" | "is_file") => {
                    let kind = match m.as_str() {
                        "is_dir" => Kind::Dir,
                        "is_file" => Kind::File,
                        _ => Kind::Any,
                    };
                    Val::Bool((self.scope.exists)(&self.abspath(&p), kind))
                }
                (Val::Path(p), "as_posix") => Val::Str(p),
                (Val::Str(s), "startswith") => {
                    text(0).map_or(Val::Unknown, |t| Val::Bool(s.starts_with(&t)))
                }
                (Val::Str(s), "endswith") => {
                    text(0).map_or(Val::Unknown, |t| Val::Bool(s.ends_with(&t)))
                }
                _ => Val::Unknown,
            },
            _ => Val::Unknown,
        }
    }

    fn abspath(&self, p: &str) -> String {
        if p.starts_with('/') {
            normpath(p)
        } else {
            normpath(&join(&[self.scope.cwd.to_string(), p.to_string()]))
        }
    }
}

/// The same function under its other name (`posixpath.join` is `os.path.join`).
fn canonical(name: &str) -> String {
    match name.strip_prefix("posixpath.") {
        Some(rest) => format!("os.path.{rest}"),
        None => name.to_string(),
    }
}

fn binary(l: Val, op: &str, r: Val) -> Val {
    use std::cmp::Ordering;
    let order = |l: &Val, r: &Val| -> Option<Ordering> {
        match (l, r) {
            (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
            (Val::Str(a), Val::Str(b)) => Some(a.cmp(b)),
            (Val::Tuple(a), Val::Tuple(b)) => {
                for (x, y) in a.iter().zip(b) {
                    match (x, y) {
                        (Val::Int(x), Val::Int(y)) if x != y => return Some(x.cmp(y)),
                        (Val::Int(x), Val::Int(y)) if x == y => continue,
                        (Val::Str(x), Val::Str(y)) if x != y => return Some(x.cmp(y)),
                        (Val::Str(_), Val::Str(_)) => continue,
                        _ => return None,
                    }
                }
                Some(a.len().cmp(&b.len()))
            }
            _ => None,
        }
    };
    let known = |v: &Val| !matches!(v, Val::Unknown | Val::Ref(_) | Val::Method(..));
    match op {
        "==" | "!=" if known(&l) && known(&r) => Val::Bool((l == r) == (op == "==")),
        "is" | "is not" if matches!(l, Val::None) || matches!(r, Val::None) => {
            if known(&l) && known(&r) {
                Val::Bool((l == r) == (op == "is"))
            } else {
                Val::Unknown
            }
        }
        ">=" | "<=" | ">" | "<" => match order(&l, &r) {
            Some(o) => Val::Bool(match op {
                ">=" => o != Ordering::Less,
                "<=" => o != Ordering::Greater,
                ">" => o == Ordering::Greater,
                _ => o == Ordering::Less,
            }),
            None => Val::Unknown,
        },
        "in" | "not in" => {
            let found = match (&l, &r) {
                (Val::Str(a), Val::Str(b)) => Some(b.contains(a.as_str())),
                (x, Val::Tuple(items)) if known(x) => Some(items.contains(x)),
                _ => None,
            };
            found.map_or(Val::Unknown, |f| Val::Bool(f == (op == "in")))
        }
        "/" => match (&l, r.as_path_text()) {
            (Val::Path(p), Some(t)) => Val::Path(pure(&join(&[p.clone(), t]))),
            _ => Val::Unknown,
        },
        "+" => match (l, r) {
            (Val::Str(a), Val::Str(b)) => Val::Str(a + &b),
            (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_add(b)),
            _ => Val::Unknown,
        },
        "-" => match (l, r) {
            (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_sub(b)),
            _ => Val::Unknown,
        },
        _ => Val::Unknown,
    }
}

/// `in` with a mapping on the right (`"X" in os.environ`) needs the scope: handled here.
pub fn eval_condition(text: &str, scope: &Scope<'_>) -> Option<bool> {
    let mut effects = Vec::new();
    let expr = parse(text);
    if let Expr::Bin(l, op, r) = &expr {
        if op == "in" || op == "not in" {
            if let Expr::Attr(base, attr) = r.as_ref() {
                if matches!(base.as_ref(), Expr::Name(n) if n == "os") && attr == "environ" {
                    let mut ev = Evaluator {
                        scope,
                        effects: &mut effects,
                    };
                    if let Val::Str(key) = ev.eval(l) {
                        return Some((scope.env)(&key).is_some() == (op == "in"));
                    }
                    return None;
                }
            }
        }
    }
    Evaluator {
        scope,
        effects: &mut effects,
    }
    .eval(&expr)
    .truth()
}

/// `posixpath.dirname`.
pub fn dirname(p: &str) -> String {
    let i = p.rfind('/').map_or(0, |i| i + 1);
    let head = &p[..i];
    if !head.is_empty() && head.chars().any(|c| c != '/') {
        head.trim_end_matches('/').to_string()
    } else {
        head.to_string()
    }
}

/// `posixpath.join`.
pub fn join(parts: &[String]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i == 0 || part.starts_with('/') {
            out = part.clone();
        } else if out.is_empty() || out.ends_with('/') {
            out.push_str(part);
        } else {
            out.push('/');
            out.push_str(part);
        }
    }
    out
}

/// `posixpath.normpath`.
pub fn normpath(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let initial = if p.starts_with("//") && !p.starts_with("///") {
        "//"
    } else if p.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if initial.is_empty() {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = format!("{initial}{}", parts.join("/"));
    if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// How `pathlib` spells a path: no empty or `.` components, no trailing slash.
fn pure(p: &str) -> String {
    let absolute = p.starts_with('/');
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    match (absolute, parts.is_empty()) {
        (true, _) => format!("/{}", parts.join("/")),
        (false, true) => ".".into(),
        (false, false) => parts.join("/"),
    }
}

fn path_parent(p: &str) -> String {
    match p.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => p[..i].to_string(),
        None => ".".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_scope<T>(locals: &BTreeMap<String, Val>, f: impl FnOnce(&Scope<'_>) -> T) -> T {
        let env = |k: &str| (k == "DEBUG").then(|| "1".to_string());
        let exists = |p: &str, _: Kind| p == "/srv/app/lib";
        let scope = Scope {
            module: "mysite.wsgi",
            file: Some("/srv/app/mysite/wsgi.py"),
            cwd: "/srv",
            version: (3, 11, 7),
            prefix: "/usr/local",
            base_prefix: "/usr/local",
            locals,
            env: &env,
            exists: &exists,
        };
        f(&scope)
    }

    fn value(text: &str) -> Val {
        let locals = BTreeMap::new();
        with_scope(&locals, |s| eval(text, s, &mut Vec::new()))
    }

    fn cond(text: &str) -> Option<bool> {
        let locals = BTreeMap::new();
        with_scope(&locals, |s| eval_condition(text, s))
    }

    #[test]
    fn paths_as_wsgi_files_compute_them() {
        assert_eq!(
            value("os.path.dirname(os.path.abspath(__file__))"),
            Val::Str("/srv/app/mysite".into())
        );
        assert_eq!(
            value("os.path.join(os.path.dirname(__file__), '..')"),
            Val::Str("/srv/app/mysite/..".into())
        );
        assert_eq!(
            value("str(pathlib.Path(__file__).resolve().parent.parent)"),
            Val::Str("/srv/app".into())
        );
        assert_eq!(
            value("Path(__file__).resolve().parents[1] / 'lib'"),
            Val::Path("/srv/app/lib".into())
        );
        assert_eq!(
            value("os.path.abspath('x/../y')"),
            Val::Str("/srv/y".into())
        );
        assert_eq!(value("some_function(__file__)"), Val::Unknown);
    }

    #[test]
    fn conditions_known_and_unknown() {
        assert_eq!(cond("__name__ == '__main__'"), Some(false));
        assert_eq!(cond("sys.version_info >= (3, 8)"), Some(true));
        assert_eq!(cond("sys.version_info[:2] < (3, 12)"), Some(true));
        assert_eq!(cond("sys.version_info[:2] == (3, 11)"), Some(true));
        assert_eq!(cond("sys.version_info < (3, 12)"), Some(true));
        assert_eq!(cond("sys.platform.startswith('win')"), Some(false));
        assert_eq!(cond("os.environ.get('DEBUG')"), Some(true));
        assert_eq!(cond("'DEBUG' not in os.environ"), Some(false));
        assert_eq!(cond("os.getenv('NOPE')"), Some(false));
        assert_eq!(cond("typing.TYPE_CHECKING"), Some(false));
        assert_eq!(cond("not settings.DEBUG"), None);
        assert_eq!(cond("os.path.isdir('lib')"), Some(false));
        assert_eq!(cond("os.path.isdir('app/lib')"), Some(true));
        assert_eq!(cond("False and unknown_thing"), Some(false));
    }

    #[test]
    fn sys_path_edits_are_effects() {
        let locals = BTreeMap::new();
        let mut effects = Vec::new();
        with_scope(&locals, |s| {
            eval(
                "sys.path.insert(0, os.path.dirname(__file__))",
                s,
                &mut effects,
            );
            eval("sys.path.append('/opt/lib')", s, &mut effects);
        });
        assert_eq!(
            effects,
            [
                Effect::SysPathInsert(0, "/srv/app/mysite".into()),
                Effect::SysPathAppend("/opt/lib".into())
            ]
        );
    }

    #[test]
    fn posix_path_functions() {
        assert_eq!(dirname("/a/b/"), "/a/b");
        assert_eq!(dirname("/a"), "/");
        assert_eq!(dirname("a"), "");
        assert_eq!(normpath("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(normpath("../x/.."), "..");
        assert_eq!(join(&["/a".into(), "b".into(), "/c".into()]), "/c");
    }
}
