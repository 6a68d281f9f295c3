//! Reading Python source the way the import model needs it: not a full parser, but enough of
//! Python's lexical and block structure to find what a module does *at import time* — its
//! top-level `import`/`from` statements, the names it binds (`def`, `class`, assignments), its
//! `if`/`try`/`with`/`for` blocks (which run at import time too), `raise` statements and
//! `sys.path` edits. Function and class bodies are skipped: they do not run on import.
//!
//! Strings (including triple-quoted docstrings), comments, bracket continuations and backslash
//! continuations are handled, so a docstring that mentions `import django` imports nothing.

/// One logical line: physical lines joined by open brackets, backslashes or long strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// The 1-based number of its first physical line (what a traceback shows).
    pub number: u32,
    /// Its indentation, tabs expanded to multiples of 8 as Python's tokenizer does.
    pub indent: usize,
    /// The code without comments; strings kept verbatim.
    pub text: String,
    /// Its first physical line, stripped: the source line a traceback prints.
    pub source: String,
    /// The number of whitespace characters before `text` on the physical line.
    pub lead: usize,
    /// Whether it is one physical line (only then does a traceback point at a statement).
    pub single: bool,
}

/// Splits source into logical lines, skipping blank and comment-only lines.
pub fn logical_lines(src: &str) -> Vec<Line> {
    let mut out = Vec::new();
    let mut current: Option<Line> = None;
    let mut depth = 0usize;
    // The quote character and whether the string is triple-quoted.
    let mut string: Option<(char, bool)> = None;
    for (index, raw) in src.lines().enumerate() {
        let number = index as u32 + 1;
        let chars: Vec<char> = raw.chars().collect();
        let mut j = 0;
        match current.as_mut() {
            None => {
                let trimmed = raw.trim_start();
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('\x0c') {
                    continue;
                }
                let mut indent = 0;
                while j < chars.len() && matches!(chars[j], ' ' | '\t' | '\x0c') {
                    indent = if chars[j] == '\t' {
                        (indent / 8 + 1) * 8
                    } else {
                        indent + 1
                    };
                    j += 1;
                }
                current = Some(Line {
                    number,
                    indent,
                    text: String::new(),
                    source: raw.trim().to_string(),
                    lead: j,
                    single: true,
                });
            }
            Some(line) => {
                line.text.push(if string.is_some() { '\n' } else { ' ' });
                line.single = false;
            }
        }
        let line = current.as_mut().expect("a logical line is open");
        let mut continued = false;
        while j < chars.len() {
            let c = chars[j];
            if let Some((quote, triple)) = string {
                line.text.push(c);
                if c == '\\' {
                    match chars.get(j + 1) {
                        Some(&next) => {
                            line.text.push(next);
                            j += 2;
                        }
                        None => {
                            continued = true;
                            j += 1;
                        }
                    }
                    continue;
                }
                if c == quote {
                    if !triple {
                        string = None;
                    } else if chars.get(j + 1) == Some(&quote) && chars.get(j + 2) == Some(&quote) {
                        line.text.push(quote);
                        line.text.push(quote);
                        string = None;
                        j += 3;
                        continue;
                    }
                }
                j += 1;
                continue;
            }
            match c {
                '#' => break,
                '\'' | '"' => {
                    let triple = chars.get(j + 1) == Some(&c) && chars.get(j + 2) == Some(&c);
                    string = Some((c, triple));
                    if triple {
                        line.text.push(c);
                        line.text.push(c);
                        j += 2;
                    }
                }
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth = depth.saturating_sub(1),
                '\\' if j + 1 == chars.len() => {
                    continued = true;
                    j += 1;
                    continue;
                }
                _ => {}
            }
            line.text.push(c);
            j += 1;
        }
        if let Some((_, false)) = string {
            if !continued {
                // An unterminated single-quoted string: a syntax error; end it here.
                string = None;
            }
        }
        if string.is_none() && depth == 0 && !continued {
            out.extend(current.take());
        }
    }
    out.extend(current.take());
    out
}

/// Calls `f` with the byte offset and character of every character outside strings and
/// brackets; stops when `f` returns true, giving that offset.
pub fn find_top_level(text: &str, mut f: impl FnMut(usize, char, &str) -> bool) -> Option<usize> {
    let bytes: Vec<(usize, char)> = text.char_indices().collect();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let (at, c) = bytes[i];
        match c {
            '\'' | '"' => {
                let triple = bytes.get(i + 1).map(|b| b.1) == Some(c)
                    && bytes.get(i + 2).map(|b| b.1) == Some(c);
                i += if triple { 3 } else { 1 };
                while i < bytes.len() {
                    let d = bytes[i].1;
                    if d == '\\' {
                        i += 2;
                        continue;
                    }
                    if d == c
                        && (!triple
                            || (bytes.get(i + 1).map(|b| b.1) == Some(c)
                                && bytes.get(i + 2).map(|b| b.1) == Some(c)))
                    {
                        i += if triple { 3 } else { 1 };
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 && f(at, c, &text[at..]) => return Some(at),
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits on a top-level separator character.
pub fn split_top_level(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut positions = Vec::new();
    find_top_level(text, |at, c, _| {
        if c == sep {
            positions.push(at);
        }
        false
    });
    for at in positions {
        parts.push(&text[start..at]);
        start = at + sep.len_utf8();
    }
    parts.push(&text[start..]);
    parts
}

/// A statement that runs at import time, or binds a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    /// `import a.b, c as d`: (dotted name, alias).
    Import(Vec<(String, Option<String>)>),
    /// `from ..a.b import c as d, e` (`names` is `[("*", None)]` for a star import).
    From {
        level: usize,
        module: String,
        names: Vec<(String, Option<String>)>,
    },
    Def(String),
    Class(String),
    /// `a = b = value`, `a: int = value`, `a += value`: the plain names bound.
    Assign {
        targets: Vec<String>,
        value: String,
    },
    /// `raise X(...)`; `None` for a bare `raise`.
    Raise(Option<String>),
    /// An expression statement (a call such as `sys.path.insert(0, ...)`).
    Expr(String),
    /// `if`/`elif`/`else`: conditions (`None` for `else`) and bodies.
    If(Vec<(Option<String>, Vec<Node>)>),
    Try {
        body: Vec<Node>,
        handlers: Vec<Handler>,
        orelse: Vec<Node>,
        finally: Vec<Node>,
    },
    /// `with`, `for` and `while` bodies (with any `else`), run once.
    Block(Vec<Node>),
    Other,
}

/// One `except` clause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handler {
    /// The exception class names it catches; `None` for a bare `except:`.
    pub types: Option<Vec<String>>,
    pub body: Vec<Node>,
}

/// A statement with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub line: u32,
    pub source: String,
    /// The markers a traceback prints under `source` when this statement fails.
    pub carets: Option<String>,
    pub stmt: Stmt,
}

/// The module's top-level statements.
pub fn parse_module(src: &str) -> Vec<Node> {
    let lines = logical_lines(src);
    let mut i = 0;
    parse_suite(&lines, &mut i, None)
}

const COMPOUND: [&str; 12] = [
    "if", "elif", "else", "try", "except", "finally", "with", "for", "while", "def", "class",
    "async",
];

fn first_word(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// A compound statement's header (keyword and what follows it up to the colon) and its
/// inline body, if the line is one.
fn split_header(text: &str) -> Option<(&str, &str, &str)> {
    let keyword = first_word(text);
    let soft = keyword == "match";
    if !COMPOUND.contains(&keyword) && !soft {
        return None;
    }
    let colon = find_top_level(text, |_, c, rest| c == ':' && !rest.starts_with(":="))?;
    let header = text[keyword.len()..colon].trim();
    let inline = text[colon + 1..].trim();
    // `match` is a keyword only as `match subject:` (`match: int = 1` is an annotation).
    if soft && (header.is_empty() || header.starts_with('=') || !inline.is_empty()) {
        return None;
    }
    Some((keyword, header, inline))
}

/// Parses the lines indented deeper than `parent` (all lines at the top level).
fn parse_suite(lines: &[Line], i: &mut usize, parent: Option<usize>) -> Vec<Node> {
    let mut nodes = Vec::new();
    while *i < lines.len() {
        let line = &lines[*i];
        if parent.is_some_and(|p| line.indent <= p) {
            break;
        }
        *i += 1;
        let Some((keyword, header, inline)) = split_header(line.text.trim()) else {
            nodes.extend(simple_statements(line, line.text.trim()));
            continue;
        };
        let body = |i: &mut usize| -> Vec<Node> {
            if inline.is_empty() {
                parse_suite(lines, i, Some(line.indent))
            } else {
                simple_statements(line, inline)
            }
        };
        let node = |stmt| Node {
            line: line.number,
            source: line.source.clone(),
            carets: None,
            stmt,
        };
        let stmt = match keyword {
            "def" => {
                body(i);
                Stmt::Def(first_word(header).to_string())
            }
            "class" => {
                body(i);
                Stmt::Class(first_word(header).to_string())
            }
            "async" => {
                let rest = header;
                body(i);
                match first_word(rest) {
                    "def" => Stmt::Def(first_word(rest[3..].trim()).to_string()),
                    _ => Stmt::Other,
                }
            }
            "match" => {
                // Each case is a branch whose condition compares the subject with the pattern.
                let mut branches = Vec::new();
                while *i < lines.len() && lines[*i].indent > line.indent {
                    let at = &lines[*i];
                    *i += 1;
                    let text = at.text.trim();
                    let colon = (first_word(text) == "case")
                        .then(|| {
                            find_top_level(text, |_, c, rest| c == ':' && !rest.starts_with(":="))
                        })
                        .flatten();
                    let Some(colon) = colon else {
                        parse_suite(lines, i, Some(at.indent));
                        continue;
                    };
                    let inline = text[colon + 1..].trim();
                    let branch = sub_body(lines, i, at, inline);
                    branches.push((case_condition(header, text[4..colon].trim()), branch));
                }
                Stmt::If(branches)
            }
            "if" => {
                let mut branches = vec![(Some(header.to_string()), body(i))];
                while let Some((kw, cond, inline)) = continuation(lines, *i, line.indent) {
                    if kw != "elif" && kw != "else" {
                        break;
                    }
                    let at = &lines[*i];
                    *i += 1;
                    let branch = sub_body(lines, i, at, inline);
                    branches.push(((kw == "elif").then(|| cond.to_string()), branch));
                    if kw == "else" {
                        break;
                    }
                }
                Stmt::If(branches)
            }
            "try" => {
                let try_body = body(i);
                let mut handlers = Vec::new();
                let mut orelse = Vec::new();
                let mut finally = Vec::new();
                while let Some((kw, rest, inline)) = continuation(lines, *i, line.indent) {
                    let at = &lines[*i];
                    match kw {
                        "except" => {
                            *i += 1;
                            handlers.push(Handler {
                                types: except_types(rest),
                                body: sub_body(lines, i, at, inline),
                            });
                        }
                        "else" => {
                            *i += 1;
                            orelse = sub_body(lines, i, at, inline);
                        }
                        "finally" => {
                            *i += 1;
                            finally = sub_body(lines, i, at, inline);
                            break;
                        }
                        _ => break,
                    }
                }
                Stmt::Try {
                    body: try_body,
                    handlers,
                    orelse,
                    finally,
                }
            }
            "with" | "for" | "while" => {
                let mut all = body(i);
                if keyword != "with" {
                    if let Some(("else", _, inline)) = continuation(lines, *i, line.indent) {
                        let at = &lines[*i];
                        *i += 1;
                        all.extend(sub_body(lines, i, at, inline));
                    }
                }
                Stmt::Block(all)
            }
            // A stray `elif`/`else`/`except`/`finally` (a syntax error): its body is skipped.
            _ => {
                body(i);
                Stmt::Other
            }
        };
        nodes.push(node(stmt));
    }
    nodes
}

/// A name no scope has: a condition the model cannot decide.
const UNDECIDABLE: &str = "__wsgilab_undecidable__";

/// `case PATTERN [if GUARD]` as an `if` condition on the subject (`None`: always taken).
fn case_condition(subject: &str, pattern: &str) -> Option<String> {
    let (pattern, guard) = match find_top_level(pattern, |_, _, rest| rest.starts_with(" if ")) {
        Some(at) => (pattern[..at].trim(), Some(pattern[at + 4..].trim())),
        None => (pattern, None),
    };
    let alternatives: Vec<String> = split_top_level(pattern, '|')
        .into_iter()
        .map(str::trim)
        .map(|alt| {
            let literal = alt.starts_with(['\'', '"', '-'])
                || alt.starts_with(|c: char| c.is_ascii_digit())
                || ["None", "True", "False"].contains(&alt)
                || (alt.contains('.') && is_dotted(alt));
            if alt == "_" || is_identifier(alt) && !literal {
                "True".to_string()
            } else if literal {
                format!("({subject}) == ({alt})")
            } else {
                UNDECIDABLE.to_string()
            }
        })
        .collect();
    let matches = alternatives.join(" or ");
    match guard {
        None if matches == "True" => None,
        None => Some(matches),
        Some(guard) => Some(format!("({matches}) and ({guard})")),
    }
}

/// The clause continuing a compound statement at `indent` (`elif`, `else`, `except`, ...).
fn continuation(lines: &[Line], i: usize, indent: usize) -> Option<(&str, &str, &str)> {
    let line = lines.get(i)?;
    if line.indent != indent {
        return None;
    }
    split_header(line.text.trim())
}

fn sub_body(lines: &[Line], i: &mut usize, at: &Line, inline: &str) -> Vec<Node> {
    if inline.is_empty() {
        parse_suite(lines, i, Some(at.indent))
    } else {
        simple_statements(at, inline)
    }
}

/// `except (A, B) as e` → `[A, B]`; `except` → `None`.
fn except_types(rest: &str) -> Option<Vec<String>> {
    let rest = rest.trim_start_matches('*').trim();
    if rest.is_empty() {
        return None;
    }
    let expr = match find_top_level(rest, |_, _, tail| tail.starts_with(" as ")) {
        Some(at) => &rest[..at],
        None => rest,
    };
    let inner = expr
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .to_string();
    Some(
        inner
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect(),
    )
}

/// The `;`-separated simple statements of one line.
fn simple_statements(line: &Line, text: &str) -> Vec<Node> {
    split_top_level(text, ';')
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Node {
            line: line.number,
            source: line.source.clone(),
            carets: carets(line, s),
            stmt: simple(s),
        })
        .collect()
}

/// Python 3.11's `^^^` under a statement that is only part of its line (`x = 1; import y`,
/// `import y  # comment`); `None` where the traceback shows none. `statement` must be a slice
/// of `line.text`.
fn carets(line: &Line, statement: &str) -> Option<String> {
    if !line.single {
        return None;
    }
    let offset = (statement.as_ptr() as usize).checked_sub(line.text.as_ptr() as usize)?;
    let before = line.text.get(..offset)?;
    let start = before.chars().count();
    let width = statement.chars().count();
    (width < line.source.chars().count())
        .then(|| format!("{}{}", " ".repeat(start), "^".repeat(width)))
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

fn is_dotted(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_identifier)
}

/// `a.b as c` → (`a.b`, Some(`c`)).
fn alias(part: &str) -> Option<(String, Option<String>)> {
    let words: Vec<&str> = part.split_whitespace().collect();
    match words.as_slice() {
        [name] if is_dotted(name) || *name == "*" => Some((name.to_string(), None)),
        [name, "as", alias] if is_dotted(name) && is_identifier(alias) => {
            Some((name.to_string(), Some(alias.to_string())))
        }
        _ => None,
    }
}

fn simple(s: &str) -> Stmt {
    match first_word(s) {
        "import" => {
            let names: Option<Vec<_>> = s["import".len()..].split(',').map(alias).collect();
            return names.map_or(Stmt::Other, Stmt::Import);
        }
        "from" => return from_import(s).unwrap_or(Stmt::Other),
        "raise" => {
            let rest = s["raise".len()..].trim();
            return Stmt::Raise((!rest.is_empty()).then(|| rest.to_string()));
        }
        "pass" | "del" | "global" | "nonlocal" | "assert" | "return" | "break" | "continue"
        | "yield" | "await"
            if !s[first_word(s).len()..].trim_start().starts_with('=') =>
        {
            return Stmt::Other
        }
        _ => {}
    }
    assignment(s).unwrap_or_else(|| Stmt::Expr(s.to_string()))
}

fn from_import(s: &str) -> Option<Stmt> {
    let rest = s["from".len()..].trim_start();
    let import_at = find_top_level(rest, |at, _, tail| {
        tail.starts_with("import")
            && at > 0
            && rest[..at].ends_with(|c: char| c.is_whitespace() || c == '.')
    })?;
    let target = rest[..import_at].trim();
    let level = target.chars().take_while(|&c| c == '.').count();
    let module = target[level..].trim().to_string();
    if !(module.is_empty() || is_dotted(&module)) || (level == 0 && module.is_empty()) {
        return None;
    }
    let list = rest[import_at + "import".len()..]
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    let names: Option<Vec<_>> = list
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(alias)
        .collect();
    Some(Stmt::From {
        level,
        module,
        names: names?,
    })
}

/// `a = b = 1`, `x: int = 1`, `x += 1`, `a, (b, c) = ...`.
fn assignment(s: &str) -> Option<Stmt> {
    let mut cuts = Vec::new();
    let mut augmented = None;
    find_top_level(s, |at, c, tail| {
        if c != '=' || tail.starts_with("==") {
            return false;
        }
        let before = &s[..at];
        if before.ends_with("<<") || before.ends_with(">>") {
            augmented.get_or_insert(at - 2);
        } else if before.ends_with(['=', '!', '<', '>', ':']) {
            // `==`, `!=`, `<=`, `>=`, `:=`: not an assignment.
        } else if before.ends_with(['+', '-', '*', '/', '%', '&', '|', '^', '@']) {
            augmented.get_or_insert(before.trim_end_matches(['*', '/']).len().min(at - 1));
        } else {
            cuts.push(at);
        }
        false
    });
    if let Some(at) = augmented {
        let target = s[..at].trim();
        return Some(Stmt::Assign {
            targets: if is_identifier(target) {
                vec![target.to_string()]
            } else {
                Vec::new()
            },
            value: String::new(),
        });
    }
    if cuts.is_empty() {
        // `x: int` (an annotation alone) binds nothing.
        return None;
    }
    let mut targets = Vec::new();
    let mut start = 0;
    for &at in &cuts {
        collect_targets(&s[start..at], &mut targets);
        start = at + 1;
    }
    Some(Stmt::Assign {
        targets,
        value: s[start..].trim().to_string(),
    })
}

fn collect_targets(target: &str, out: &mut Vec<String>) {
    // `x: int` → `x`.
    let target = match find_top_level(target, |_, c, _| c == ':') {
        Some(at) => &target[..at],
        None => target,
    };
    let target = target.trim();
    let unwrapped = target
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .or_else(|| target.strip_prefix('[').and_then(|t| t.strip_suffix(']')));
    let parts = match unwrapped {
        Some(inner) => split_top_level(inner, ','),
        None => split_top_level(target, ','),
    };
    if parts.len() == 1 && unwrapped.is_none() {
        let name = parts[0].trim().trim_start_matches('*');
        if is_identifier(name) {
            out.push(name.to_string());
        }
        return;
    }
    for part in parts {
        if !part.trim().is_empty() {
            collect_targets(part, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(src: &str) -> Vec<Stmt> {
        parse_module(src).into_iter().map(|n| n.stmt).collect()
    }

    #[test]
    fn docstrings_comments_and_continuations_hide_nothing_and_invent_nothing() {
        let src = "\"\"\"A docstring.\n\nimport django\n\"\"\"\nimport os  # import sys\nx = ('a',\n     'b')\ny = 1 + \\\n    2\ns = 'it''s # not a comment'\n";
        let lines = logical_lines(src);
        assert_eq!(lines.len(), 5);
        assert!(!lines[0].single && lines[1].single);
        assert_eq!(lines[1].number, 5);
        assert_eq!(lines[1].text, "import os  ");
        assert_eq!(lines[2].number, 6);
        assert_eq!(lines[2].source, "x = ('a',");
        assert_eq!(
            stmts(src)[1],
            Stmt::Import(vec![("os".into(), None)]),
            "the docstring's text is not an import"
        );
        assert_eq!(
            stmts(src)[3],
            Stmt::Assign {
                targets: vec!["y".into()],
                value: "1 +      2".into()
            }
        );
    }

    #[test]
    fn imports_in_all_their_forms() {
        let src = "import a.b as c, d\nfrom . import x\nfrom ..pkg.mod import (\n    y as z,\n    w,\n)\nfrom m import *\n";
        assert_eq!(
            stmts(src),
            vec![
                Stmt::Import(vec![("a.b".into(), Some("c".into())), ("d".into(), None)]),
                Stmt::From {
                    level: 1,
                    module: String::new(),
                    names: vec![("x".into(), None)]
                },
                Stmt::From {
                    level: 2,
                    module: "pkg.mod".into(),
                    names: vec![("y".into(), Some("z".into())), ("w".into(), None)]
                },
                Stmt::From {
                    level: 0,
                    module: "m".into(),
                    names: vec![("*".into(), None)]
                },
            ]
        );
    }

    #[test]
    fn blocks_that_run_at_import_and_bodies_that_do_not() {
        let src = "\
try:
    import simplejson as json
except (ImportError, AttributeError) as e:
    import json
else:
    pass
finally:
    x = 1
def application(environ, start_response):
    import django
class Config(object):
    import nothing_here
if __name__ == '__main__':
    import main_only
elif x: import other
else:
    y = 2
with open('f') as f:
    import inside_with
async def handler(): pass
";
        let nodes = parse_module(src);
        assert_eq!(nodes.len(), 6);
        match &nodes[0].stmt {
            Stmt::Try {
                body,
                handlers,
                orelse,
                finally,
            } => {
                assert_eq!(body.len(), 1);
                assert_eq!(
                    handlers[0].types,
                    Some(vec!["ImportError".into(), "AttributeError".into()])
                );
                assert_eq!(handlers[0].body[0].line, 4);
                assert_eq!(orelse[0].stmt, Stmt::Other);
                assert_eq!(finally.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(nodes[1].stmt, Stmt::Def("application".into()));
        assert_eq!(nodes[2].stmt, Stmt::Class("Config".into()));
        match &nodes[3].stmt {
            Stmt::If(branches) => {
                assert_eq!(branches.len(), 3);
                assert_eq!(branches[1].0.as_deref(), Some("x"));
                assert_eq!(branches[1].1[0].source, "elif x: import other");
                assert_eq!(branches[2].0, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&nodes[4].stmt, Stmt::Block(b) if b.len() == 1));
        assert_eq!(nodes[5].stmt, Stmt::Def("handler".into()));
    }

    #[test]
    fn match_cases_become_conditions() {
        let src = "match sys.platform:\n    case 'linux' | 'darwin':\n        import posix_only\n    case _:\n        import other\nmatch: int = 1\n";
        let nodes = parse_module(src);
        assert_eq!(nodes.len(), 2);
        match &nodes[0].stmt {
            Stmt::If(branches) => {
                assert_eq!(
                    branches[0].0.as_deref(),
                    Some("(sys.platform) == ('linux') or (sys.platform) == ('darwin')")
                );
                assert_eq!(branches[1].0, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&nodes[1].stmt, Stmt::Assign { targets, .. } if targets == &["match"]));
        assert_eq!(case_condition("x", "Point(x=0)"), Some(UNDECIDABLE.into()));
        assert_eq!(
            case_condition("x", "y if y > 1"),
            Some("(True) and (y > 1)".into())
        );
    }

    #[test]
    fn assignments_bind_plain_names_only() {
        let bound = |s: &str| match simple(s) {
            Stmt::Assign { targets, .. } => targets,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(bound("a = b = f(x=1)"), ["a", "b"]);
        assert_eq!(bound("a, (b, *c) = 1, (2, 3)"), ["a", "b", "c"]);
        assert_eq!(bound("x: int = 3"), ["x"]);
        assert_eq!(bound("n += 1"), ["n"]);
        assert_eq!(bound("obj.attr = 1"), Vec::<String>::new());
        assert_eq!(bound("d['k'] = 1"), Vec::<String>::new());
        assert!(matches!(simple("x == 1"), Stmt::Expr(_)));
        assert!(matches!(simple("f(a <= b)"), Stmt::Expr(_)));
        assert!(matches!(simple("x: int"), Stmt::Expr(_)));
        assert!(matches!(simple("print(x)"), Stmt::Expr(_)));
    }
}
