//! uWSGI's substitutions: magic variables (`%d`, `%n`, ...) replaced in a file's whole text
//! when it is read, then three passes over every option's value once everything is read:
//! `$(NAME)` from the environment, `@(FILE)` a file's content, `%(name)` another option or
//! placeholder (with uWSGI's arithmetic: `%(processes + 1)`, `%(a b)` concatenates).
//!
//! The passes run in uWSGI's order (core/uwsgi.c: `$`, then `@`, then `%`) over the options in
//! the order they were given, so a value is expanded before later ones refer to it, and a
//! placeholder refers to the *first* option of that name, as `uwsgi_get_exported_opt` does.
//! Where uWSGI would leave an unknown `%(name)` in place (and pass the literal text on to, say,
//! chdir), wsgilab reports it as an error naming it.

use std::path::Path;

/// The per-file magic variables, `%X` for each letter X (core/uwsgi.c
/// `config_magic_table_fill`, and the static ones set in `uwsgi_setup`).
#[derive(Debug, Clone, Default)]
pub struct MagicTable {
    vars: Vec<(char, String)>,
}

/// What the magic table needs to know about the machine (the static variables).
#[derive(Debug, Clone)]
pub struct MachineFacts {
    /// `%v`: the working directory.
    pub cwd: String,
    /// `%h`: the host name.
    pub hostname: String,
    /// `%k`: the number of CPU cores.
    pub cpus: u32,
    /// `%u`, `%U`, `%g`, `%G`: user and group ids and names.
    pub uid: u32,
    pub user: String,
    pub gid: u32,
    pub group: String,
    /// `%t`: unix time in seconds (`%T` in microseconds).
    pub now_micros: u64,
    /// `%b`: the binary's path.
    pub binary: String,
}

/// The version uWSGI's `%V` gives: the uWSGI whose behaviour wsgilab follows.
pub const UWSGI_VERSION: &str = "2.0.31";

/// uWSGI's filename hash (djb33x), shown by `%j` as 8 hex digits in memory (little-endian)
/// order.
fn djb33x_hex(s: &str) -> String {
    let mut hash: u32 = 5381;
    for b in s.bytes() {
        hash = (hash << 5).wrapping_add(hash) ^ (b as i8 as i32 as u32);
    }
    hash.to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl MagicTable {
    /// The table for a config file: `spec` as typed (with `:section` if any, for `%o` and
    /// `%x`), `full` its absolute path; `first` is the table of the first config file read
    /// (uWSGI's `%O`, `%D`, ... keep the first file's values), `None` when this is the first.
    pub fn for_file(
        spec: &str,
        full: &Path,
        section: Option<&str>,
        facts: &MachineFacts,
        first: Option<&MagicTable>,
    ) -> MagicTable {
        let p = full.display().to_string();
        let s = p.rsplit('/').next().unwrap_or("").to_string();
        let d = p[..p.len() - s.len()].to_string(); // with its trailing slash
        let d_trim = d.trim_end_matches('/');
        let c = d_trim.rsplit('/').next().unwrap_or("").to_string();
        let (n, e) = match s.rsplit_once('.') {
            Some((n, e)) => (n.to_string(), e.to_string()),
            None => (s.clone(), String::new()),
        };
        let mut vars = vec![
            ('o', spec.to_string()),
            ('p', p.clone()),
            ('s', s),
            ('d', d.clone()),
            ('c', c),
            ('n', n),
            ('e', e),
            ('x', section.unwrap_or("").to_string()),
            ('j', djb33x_hex(&p)),
            ('b', facts.binary.clone()),
            ('v', facts.cwd.clone()),
            ('h', facts.hostname.clone()),
            ('t', (facts.now_micros / 1_000_000).to_string()),
            ('T', facts.now_micros.to_string()),
            ('V', UWSGI_VERSION.to_string()),
            ('k', facts.cpus.to_string()),
            ('[', "\u{1b}".to_string()),
            ('u', facts.uid.to_string()),
            ('U', facts.user.clone()),
            ('g', facts.gid.to_string()),
            ('G', facts.group.clone()),
            ('%', "%".to_string()),
            ('(', "%(".to_string()),
        ];
        // %0 .. %9: the components of the directory, from the root.
        for (i, part) in d_trim
            .split('/')
            .filter(|c| !c.is_empty())
            .take(10)
            .enumerate()
        {
            vars.push((char::from(b'0' + i as u8), part.to_string()));
        }
        let upper = ['o', 'd', 's', 'p', 'c', 'e', 'n', 'x', 'j'];
        for l in upper {
            let v = match first {
                Some(f) => f.get(l.to_ascii_uppercase()).unwrap_or("").to_string(),
                None => vars
                    .iter()
                    .find(|(k, _)| *k == l)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            };
            vars.push((l.to_ascii_uppercase(), v));
        }
        MagicTable { vars }
    }

    fn get(&self, c: char) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| *k == c)
            .map(|(_, v)| v.as_str())
    }

    /// Substitutes `%X` in a file's text, as uWSGI's `magic_sub` does: every `%` followed by a
    /// character is replaced by that variable, and a letter uWSGI does not define is replaced
    /// by nothing (`100%x` is `100` plus the section). `%%` is `%`; `%(` stays for the
    /// placeholder pass. Returns the text and the unknown variables met (for a warning).
    pub fn substitute(&self, text: &str) -> (String, Vec<char>) {
        let mut out = String::with_capacity(text.len());
        let mut unknown = Vec::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            match chars.next() {
                None => out.push('%'),
                Some(n) => match self.get(n) {
                    Some(v) => out.push_str(v),
                    None => {
                        if !unknown.contains(&n) {
                            unknown.push(n);
                        }
                    }
                },
            }
        }
        (out, unknown)
    }
}

/// Finds the first `S(...)` (S = `$`, `@` or `%`) in `value`, with nested parentheses counted
/// as uWSGI's `uwsgi_apply_config_pass` counts them: the byte range of the whole reference and
/// the key inside.
pub fn find_reference(value: &str, symbol: char) -> Option<(usize, usize, &str)> {
    let b = value.as_bytes();
    let s = symbol as u8;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == s && b[i + 1] == b'(' {
            let start = i;
            let key_start = i + 2;
            let mut depth = 0;
            let mut j = key_start;
            while j < b.len() {
                match b[j] {
                    b'(' => depth += 1,
                    b')' if depth > 0 => depth -= 1,
                    b')' => {
                        if j == key_start {
                            break; // `%()` is left alone, as uWSGI does
                        }
                        return Some((start, j + 1, &value[key_start..j]));
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        i += 1;
    }
    None
}

/// uWSGI's `uwsgi_manage_placeholder`: a key without spaces is looked up; with spaces, the
/// tokens are a pipeline: numbers and looked-up values concatenate, `+ - * /` apply to the next
/// token as integers, `++`/`--` increment or decrement. An unknown name inside an expression is
/// "" (as uWSGI), an unknown lone name is `None`; `unknown` collects the names not found.
pub fn evaluate(
    key: &str,
    lookup: &mut dyn FnMut(&str) -> Option<String>,
    unknown: &mut Vec<String>,
) -> Option<String> {
    if !key.contains(' ') {
        let v = lookup(key);
        if v.is_none() {
            unknown.push(key.to_string());
        }
        return v;
    }
    #[derive(Clone, Copy)]
    enum Op {
        Concat,
        Add,
        Sub,
        Mul,
        Div,
    }
    let num = |s: &str| strtoll(s);
    let mut op = Op::Concat;
    let mut current: Option<String> = None;
    for token in key.split(' ').filter(|t| !t.is_empty()) {
        let value = if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            token.to_string()
        } else {
            match token {
                "+" => {
                    op = Op::Add;
                    continue;
                }
                "-" => {
                    op = Op::Sub;
                    continue;
                }
                "*" => {
                    op = Op::Mul;
                    continue;
                }
                "/" => {
                    op = Op::Div;
                    continue;
                }
                "++" | "--" => {
                    if let Some(c) = &current {
                        let delta = if token == "++" { 1 } else { -1 };
                        current = Some(num(c).wrapping_add(delta).to_string());
                    }
                    op = Op::Concat;
                    continue;
                }
                name => match lookup(name) {
                    Some(v) => v,
                    None => {
                        unknown.push(name.to_string());
                        String::new()
                    }
                },
            }
        };
        let a = current.as_deref().map(num).unwrap_or(0);
        let b = num(&value);
        current = Some(match op {
            Op::Concat => format!("{}{}", current.as_deref().unwrap_or(""), value),
            Op::Add => a.wrapping_add(b).to_string(),
            Op::Sub => a.wrapping_sub(b).to_string(),
            Op::Mul => a.wrapping_mul(b).to_string(),
            Op::Div => a.checked_div(b).unwrap_or(0).to_string(),
        });
        op = Op::Concat;
    }
    current
}

/// C's `strtoll(s, NULL, 10)`: leading spaces, a sign, then as many digits as there are;
/// 0 when there are none; clamped on overflow.
pub fn strtoll(s: &str) -> i64 {
    let (n, _) = leading_integer(s);
    n.unwrap_or(0)
}

/// Reads an integer the way C's `strtol` does: leading whitespace, an optional sign, digits.
/// Returns the number (`None` without digits) and the text left after it.
pub fn leading_integer(s: &str) -> (Option<i64>, &str) {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\u{b}', '\u{c}']);
    let (neg, digits_at) = match t.as_bytes().first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let digits: usize = t[digits_at..]
        .bytes()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return (None, s);
    }
    let end = digits_at + digits;
    let mut n: i64 = 0;
    for b in t[digits_at..end].bytes() {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    (Some(if neg { -n } else { n }), &t[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> MachineFacts {
        MachineFacts {
            cwd: "/home/me".into(),
            hostname: "web1".into(),
            cpus: 2,
            uid: 1000,
            user: "me".into(),
            gid: 100,
            group: "users".into(),
            now_micros: 1_700_000_000_123_456,
            binary: "/usr/bin/uwsgi".into(),
        }
    }

    #[test]
    fn magic_variables_are_uwsgis() {
        let t = MagicTable::for_file(
            "conf/app.ini:dev",
            Path::new("/srv/site/conf/app.ini"),
            Some("dev"),
            &facts(),
            None,
        );
        let (s, unknown) = t.substitute(
            "%d|%n|%s|%e|%p|%c|%x|%o|%v|%h|%k|%u|%U|%g|%G|%t|%V|%0|%1|%2|%D|%%|%(x)|%z|100%",
        );
        assert_eq!(
            s,
            "/srv/site/conf/|app|app.ini|ini|/srv/site/conf/app.ini|conf|dev|conf/app.ini:dev|\
             /home/me|web1|2|1000|me|100|users|1700000000|2.0.31|srv|site|conf|/srv/site/conf/|%|%(x)||100%"
        );
        assert_eq!(unknown, vec!['z']);
        assert_eq!(t.substitute("%[").0, "\u{1b}");
        assert_eq!(t.substitute("%j").0.len(), 8);
        // Upper case: the first file's values.
        let t2 = MagicTable::for_file("b.ini", Path::new("/x/b.ini"), None, &facts(), Some(&t));
        assert_eq!(t2.substitute("%n %N %d %D").0, "b app /x/ /srv/site/conf/");
    }

    #[test]
    fn djb33x_matches_uwsgi() {
        // hash("") = 5381 = 0x00001505, little-endian bytes.
        assert_eq!(djb33x_hex(""), "05150000");
    }

    #[test]
    fn references_and_arithmetic() {
        assert_eq!(find_reference("a %(b) c", '%'), Some((2, 6, "b")));
        assert_eq!(find_reference("$(X)", '$'), Some((0, 4, "X")));
        assert_eq!(find_reference("%(a(b)c)", '%'), Some((0, 8, "a(b)c")));
        assert_eq!(find_reference("%() %(x", '%'), None);
        let vals = [("processes", "4"), ("base", "/srv"), ("name", "app")];
        let mut look = |k: &str| {
            vals.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        };
        let mut unknown = Vec::new();
        let mut e = |k: &str| evaluate(k, &mut look, &mut unknown);
        assert_eq!(e("processes + 1").as_deref(), Some("5"));
        assert_eq!(e("processes * 2 + 1").as_deref(), Some("9"));
        assert_eq!(e("2 + 1").as_deref(), Some("3"));
        assert_eq!(e("processes / 0").as_deref(), Some("0"));
        assert_eq!(e("processes ++").as_deref(), Some("5"));
        assert_eq!(e("base name").as_deref(), Some("/srvapp"));
        assert_eq!(e("9 - processes").as_deref(), Some("5"));
        assert_eq!(e("base").as_deref(), Some("/srv"));
        assert_eq!(e("nope"), None);
        assert_eq!(unknown, vec!["nope".to_string()]);
    }

    #[test]
    fn leading_integers_like_strtol() {
        assert_eq!(
            leading_integer("1000   # comment"),
            (Some(1000), "   # comment")
        );
        assert_eq!(leading_integer("  -5x"), (Some(-5), "x"));
        assert_eq!(leading_integer("abc"), (None, "abc"));
        assert_eq!(leading_integer("99999999999999999999999").0, Some(i64::MAX));
        assert_eq!(strtoll(""), 0);
    }
}
