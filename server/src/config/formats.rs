//! The four file formats uWSGI reads its options from — ini, yaml, json and xml — each turned
//! into the same list of `key = value` items with the line they came from.
//!
//! Each reader follows uWSGI 2.0's own (core/ini.c, core/yaml.c's built-in reader, core/json.c
//! with jansson, core/xmlconf.c with libxml2) rather than the format's specification, because a
//! file means what uWSGI makes of it: ini has whole-line comments only (`a = 1 ; x` is the value
//! `1 ; x`), a key without `=` is the value "" (true for a flag), the section header is whatever
//! sits between `[` and the line's last character; yaml is read line by line, `#` starts a
//! comment anywhere and quotes are kept; json's `true` is `1` and an array repeats its key.
//! Magic variables (`%d`, ...) were already substituted in the text by the caller, as uWSGI
//! substitutes them in the whole file when reading it.

/// One `key = value` read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key as written (uWSGI does not normalise it).
    pub key: String,
    /// The value, trimmed as uWSGI trims it.
    pub value: String,
    /// The 1-based line it was read from.
    pub line: usize,
    /// The line's text, trimmed (for error messages).
    pub text: String,
}

/// What a reader found: the items of the asked section, whether the section was there, and
/// notes about what uWSGI would do silently (a yaml value kept with its quotes, ...).
#[derive(Debug, Default)]
pub struct Parsed {
    pub items: Vec<Item>,
    pub found_section: bool,
    /// (line, message) problems that make the file unreadable past that point.
    pub errors: Vec<(usize, String)>,
    /// (line, message) things uWSGI accepts but a reader should know.
    pub warnings: Vec<(usize, String)>,
}

/// The formats, by what uWSGI calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ini,
    Yaml,
    Json,
    Xml,
}

impl Format {
    /// The format of a file by its extension, as uWSGI's `uwsgi_opt_load` decides (`.ini`,
    /// `.yml`/`.yaml`, `.json`/`.js`, `.xml`).
    pub fn of(path: &str) -> Option<Format> {
        if path.ends_with(".ini") {
            Some(Format::Ini)
        } else if path.ends_with(".yml") || path.ends_with(".yaml") {
            Some(Format::Yaml)
        } else if path.ends_with(".json") || path.ends_with(".js") {
            Some(Format::Json)
        } else if path.ends_with(".xml") {
            Some(Format::Xml)
        } else {
            None
        }
    }

    /// uWSGI's word for it in `[uWSGI] getting INI configuration from ...`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ini => "INI",
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Xml => "XML",
        }
    }

    /// Reads the `section` of `text` in this format.
    pub fn parse(self, text: &str, section: &str) -> Parsed {
        match self {
            Format::Ini => parse_ini(text, section),
            Format::Yaml => parse_yaml(text, section),
            Format::Json => parse_json(text, section),
            Format::Xml => parse_xml(text, section),
        }
    }
}

fn is_ini_space(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\r'
}

/// uWSGI's ini reader (core/ini.c).
pub fn parse_ini(text: &str, section: &str) -> Parsed {
    let mut out = Parsed::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut current = String::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_matches(is_ini_space);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            // uWSGI drops the line's last character whatever it is: `[uwsgi` names "uwsg".
            let mut name: Vec<char> = rest.chars().collect();
            let last = name.pop();
            current = name.into_iter().collect();
            if last != Some(']') {
                out.warnings.push((
                    i + 1,
                    format!(
                        "section header '{line}' has no closing ']': uWSGI reads it as \
                         [{current}]"
                    ),
                ));
            }
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            continue;
        }
        if current != section {
            continue;
        }
        out.found_section = true;
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (
                k.trim_end_matches(is_ini_space),
                v.trim_matches(is_ini_space),
            ),
            None => (line, ""),
        };
        out.items.push(Item {
            key: key.to_string(),
            value: value.to_string(),
            line: i + 1,
            text: line.to_string(),
        });
    }
    out
}

/// uWSGI's built-in yaml reader (core/yaml.c without libyaml): line based; the section is a
/// `name:` line, its options the more indented `key: value` lines after it; `#` starts a
/// comment anywhere on a line; a list item or a line without `: ` ends the section.
pub fn parse_yaml(text: &str, section: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut in_section = false;
    let mut current_depth = 0usize;
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.split('#').next().unwrap_or("");
        if line.is_empty() {
            continue;
        }
        let depth: usize = line
            .chars()
            .take_while(|c| matches!(c, ' ' | '\t' | '\r'))
            .map(|c| if c == ' ' { 1 } else { 8 })
            .sum();
        if depth <= current_depth {
            current_depth = depth;
            if in_section {
                return out;
            }
        } else if !in_section {
            continue;
        }
        let key = line.trim_start_matches([' ', '\t', '\r']);
        if key.is_empty() {
            continue;
        }
        if key.starts_with('-') || key.starts_with('[') || key.starts_with('{') {
            if in_section {
                out.warnings.push((
                    line_no,
                    "uWSGI's yaml reader stops at a list item: the rest of the section is \
                     not read (repeat the key on its own line instead)"
                        .to_string(),
                ));
                return out;
            }
            continue;
        }
        if !in_section {
            if let Some((name, _)) = key.split_once(':') {
                if name == section {
                    in_section = true;
                    out.found_section = true;
                }
            }
            continue;
        }
        let split = key.find(": ").or_else(|| key.find(":\t"));
        let Some(at) = split else {
            out.warnings.push((
                line_no,
                format!(
                    "'{}' has no ': ' after its key: uWSGI's yaml reader stops reading the \
                     section here (write 'key: value', or 'key: true')",
                    key.trim_end()
                ),
            ));
            return out;
        };
        let k = key[..at].trim_end_matches([' ', '\t']);
        let v = key[at + 2..]
            .trim_start_matches([' ', '\t', '\r'])
            .trim_end_matches([' ', '\t']);
        let v = v.trim_end_matches('\r');
        if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            out.warnings.push((
                line_no,
                format!("uWSGI's yaml reader keeps quotes: '{k}' is {v} with the quotes"),
            ));
        }
        out.items.push(Item {
            key: k.to_string(),
            value: v.to_string(),
            line: line_no,
            text: key.trim_end().to_string(),
        });
    }
    out
}

// ----- json -----

#[derive(Debug)]
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json, usize)>),
}

struct JsonParser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl JsonParser<'_> {
    fn line(&self) -> usize {
        1 + self.s[..self.pos.min(self.s.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }
    fn ws(&mut self) {
        while self.pos < self.s.len() && matches!(self.s[self.pos], b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }
    fn err<T>(&self, what: &str) -> Result<T, (usize, String)> {
        Err((self.line(), format!("invalid JSON: {what}")))
    }
    fn value(&mut self) -> Result<Json, (usize, String)> {
        self.ws();
        self.depth += 1;
        if self.depth > 64 {
            return self.err("nested too deeply");
        }
        let v = match self.s.get(self.pos) {
            None => self.err("unexpected end of file"),
            Some(b'{') => {
                self.pos += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.s.get(self.pos) == Some(&b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        self.ws();
                        let line = self.line();
                        if self.s.get(self.pos) != Some(&b'"') {
                            return self.err("expected a key in quotes");
                        }
                        let k = self.string()?;
                        self.ws();
                        if self.s.get(self.pos) != Some(&b':') {
                            return self.err("expected ':' after a key");
                        }
                        self.pos += 1;
                        let v = self.value()?;
                        fields.push((k, v, line));
                        self.ws();
                        match self.s.get(self.pos) {
                            Some(b',') => self.pos += 1,
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return self.err("expected ',' or '}'"),
                        }
                    }
                }
                Ok(Json::Object(fields))
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.ws();
                if self.s.get(self.pos) == Some(&b']') {
                    self.pos += 1;
                } else {
                    loop {
                        items.push(self.value()?);
                        self.ws();
                        match self.s.get(self.pos) {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return self.err("expected ',' or ']'"),
                        }
                    }
                }
                Ok(Json::Array(items))
            }
            Some(b'"') => self.string().map(Json::String),
            Some(b't') if self.s[self.pos..].starts_with(b"true") => {
                self.pos += 4;
                Ok(Json::Bool(true))
            }
            Some(b'f') if self.s[self.pos..].starts_with(b"false") => {
                self.pos += 5;
                Ok(Json::Bool(false))
            }
            Some(b'n') if self.s[self.pos..].starts_with(b"null") => {
                self.pos += 4;
                Ok(Json::Null)
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.pos;
                self.pos += 1;
                while self.pos < self.s.len()
                    && matches!(
                        self.s[self.pos],
                        b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-'
                    )
                {
                    self.pos += 1;
                }
                let n = String::from_utf8_lossy(&self.s[start..self.pos]).into_owned();
                Ok(Json::Number(n))
            }
            Some(_) => self.err("unexpected character"),
        };
        self.depth -= 1;
        v
    }
    fn string(&mut self) -> Result<String, (usize, String)> {
        self.pos += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.s.get(self.pos) {
                None => return self.err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.s.get(self.pos) {
                        Some(b'n') => '\n',
                        Some(b't') => '\t',
                        Some(b'r') => '\r',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'/') => '/',
                        Some(b'\\') => '\\',
                        Some(b'"') => '"',
                        Some(b'u') => {
                            let hex = self
                                .s
                                .get(self.pos + 1..self.pos + 5)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok());
                            let Some(code) = hex else {
                                return self.err("bad \\u escape");
                            };
                            self.pos += 4;
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return self.err("bad escape in a string"),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    self.pos += 1;
                }
                Some(&b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// uWSGI's json reader (core/json.c with jansson): the object named `section` at the top
/// level; strings as they are, `true` as `1`, `false`/`null` as `0`, integers in decimal,
/// arrays as the key repeated. (Floats and nested objects are skipped, as jansson's branch
/// skips them.)
pub fn parse_json(text: &str, section: &str) -> Parsed {
    let mut out = Parsed::default();
    let mut p = JsonParser {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let root = match p.value() {
        Ok(v) => v,
        Err(e) => {
            out.errors.push(e);
            return out;
        }
    };
    p.ws();
    if p.pos < p.s.len() {
        out.errors.push((
            p.line(),
            "invalid JSON: text after the top-level value".into(),
        ));
        return out;
    }
    let Json::Object(fields) = root else {
        out.errors.push((
            1,
            "the top level must be an object, e.g. {\"uwsgi\": {...}}".into(),
        ));
        return out;
    };
    let Some((_, Json::Object(options), _)) = fields.into_iter().find(|(k, _, _)| k == section)
    else {
        return out;
    };
    out.found_section = true;
    let scalar = |v: &Json| match v {
        Json::String(s) => Some(s.clone()),
        Json::Bool(true) => Some("1".into()),
        Json::Bool(false) | Json::Null => Some("0".into()),
        Json::Number(n) if n.bytes().all(|b| b.is_ascii_digit() || b == b'-') => Some(n.clone()),
        _ => None,
    };
    for (key, value, line) in options {
        let values: Vec<Option<String>> = match &value {
            Json::Array(items) => items.iter().map(scalar).collect(),
            other => vec![scalar(other)],
        };
        for v in values {
            match v {
                Some(v) => out.items.push(Item {
                    key: key.clone(),
                    text: format!("\"{key}\": {v}"),
                    value: v,
                    line,
                }),
                None => out.warnings.push((
                    line,
                    format!("'{key}': uWSGI skips floats and objects; write the value as a string"),
                )),
            }
        }
    }
    out
}

// ----- xml -----

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// uWSGI's xml reader (core/xmlconf.c with libxml2): the root element `<uwsgi>` (or the one
/// whose `id` attribute is the section asked), each child element an option: `<key>value</key>`
/// is the value, an empty `<key/>` is `1`.
pub fn parse_xml(text: &str, section: &str) -> Parsed {
    let mut out = Parsed::default();
    let line_at = |pos: usize| 1 + text[..pos].bytes().filter(|&b| b == b'\n').count();
    // Tokens: (position, tag text without < >) or text between tags.
    let mut pos = 0;
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut in_root = false;
    let mut root_done = false;
    // The open child element: (name, start position, text so far).
    let mut open: Option<(String, usize, String)> = None;
    while pos < bytes.len() {
        let Some(lt) = text[pos..].find('<').map(|i| pos + i) else {
            break;
        };
        if let Some((_, _, buf)) = open.as_mut() {
            buf.push_str(&text[pos..lt]);
        }
        let rest = &text[lt..];
        let (end_marker, skip) = if rest.starts_with("<!--") {
            ("-->", true)
        } else if rest.starts_with("<?") {
            ("?>", true)
        } else if rest.starts_with("<![CDATA[") {
            ("]]>", false)
        } else if rest.starts_with("<!") {
            (">", true)
        } else {
            (">", false)
        };
        let Some(gt) = rest.find(end_marker) else {
            out.errors
                .push((line_at(lt), "invalid XML: a tag is not closed".into()));
            return out;
        };
        let tag = &rest[1..gt];
        pos = lt + gt + end_marker.len();
        if skip {
            continue;
        }
        if let Some(cdata) = tag.strip_prefix("![CDATA[") {
            if let Some((_, _, buf)) = open.as_mut() {
                buf.push_str(cdata);
            }
            continue;
        }
        let closing = tag.starts_with('/');
        let self_closing = tag.ends_with('/');
        let body = tag.trim_start_matches('/').trim_end_matches('/');
        let name = body.split_whitespace().next().unwrap_or("").to_string();
        if closing {
            depth = depth.saturating_sub(1);
            if depth == 1 && in_root {
                if let Some((key, start, buf)) = open.take() {
                    let v = xml_unescape(buf.trim());
                    out.items.push(Item {
                        text: format!("<{key}>{v}</{key}>"),
                        key,
                        value: v,
                        line: line_at(start),
                    });
                }
            } else if depth == 0 && in_root {
                in_root = false;
                root_done = true;
            }
            continue;
        }
        if depth == 0 {
            if !root_done {
                let id = body
                    .split_once("id=")
                    .map(|(_, v)| v.trim_matches(|c| c == '"' || c == '\'' || c == ' '));
                let wanted = if section == "uwsgi" {
                    name == "uwsgi" && id.is_none_or(|_| true)
                } else {
                    id.and_then(|v| v.split(['"', '\'']).next()) == Some(section) || name == section
                };
                if wanted {
                    in_root = true;
                    out.found_section = true;
                }
            }
            if !self_closing {
                depth += 1;
            }
            continue;
        }
        if depth == 1 && in_root {
            if self_closing {
                out.items.push(Item {
                    key: name.clone(),
                    value: "1".into(),
                    line: line_at(lt),
                    text: format!("<{body}/>"),
                });
            } else {
                open = Some((name, lt, String::new()));
                depth += 1;
            }
            continue;
        }
        if !self_closing {
            depth += 1;
        }
    }
    if depth > 0 && in_root {
        out.errors.push((
            line_at(text.len()),
            "invalid XML: the <uwsgi> element is not closed".into(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(p: &Parsed) -> Vec<(&str, &str)> {
        p.items
            .iter()
            .map(|i| (i.key.as_str(), i.value.as_str()))
            .collect()
    }

    #[test]
    fn ini_follows_uwsgi() {
        let p = parse_ini(
            "[other]\nx=1\n[uwsgi]\n; c\n# c\n  master\nmax-requests = 1000   # no inline comments\n\
             socket=:1 ; kept\n=empty key\nk = a = b\r\n",
            "uwsgi",
        );
        assert!(p.found_section);
        assert_eq!(
            kv(&p),
            vec![
                ("master", ""),
                ("max-requests", "1000   # no inline comments"),
                ("socket", ":1 ; kept"),
                ("", "empty key"),
                ("k", "a = b"),
            ]
        );
        assert_eq!(p.items[0].line, 6);
        // The header loses its last character, whatever it is.
        let p = parse_ini("[uwsgi\nmaster = 1\n", "uwsg");
        assert!(p.found_section && p.warnings.len() == 1);
        assert!(!parse_ini("[app]\nmaster = 1\n", "uwsgi").found_section);
        // A section with only comments is "not found", as uWSGI says.
        assert!(!parse_ini("[uwsgi]\n; nothing\n", "uwsgi").found_section);
    }

    #[test]
    fn yaml_follows_uwsgi() {
        let p = parse_yaml(
            "# c\nuwsgi:\n  socket: :3031 # comment\n  module: \"app:app\"\n  master: true\nother:\n  x: 1\n",
            "uwsgi",
        );
        assert_eq!(
            kv(&p),
            vec![
                ("socket", ":3031"),
                ("module", "\"app:app\""),
                ("master", "true")
            ]
        );
        assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
        let p = parse_yaml("uwsgi:\n  a: 1\n  - b\n  c: 2\n", "uwsgi");
        assert_eq!(kv(&p), vec![("a", "1")]);
        let p = parse_yaml("uwsgi:\n  a: 1\n  master\n  c: 2\n", "uwsgi");
        assert_eq!(kv(&p), vec![("a", "1")]);
        assert!(!p.warnings.is_empty());
    }

    #[test]
    fn json_follows_uwsgi() {
        let p = parse_json(
            "{\"uwsgi\": {\"socket\": [\":1\", \":2\"], \"master\": true, \"vacuum\": false,\n \
             \"processes\": 4, \"x\": null, \"f\": 1.5}}",
            "uwsgi",
        );
        assert_eq!(
            kv(&p),
            vec![
                ("socket", ":1"),
                ("socket", ":2"),
                ("master", "1"),
                ("vacuum", "0"),
                ("processes", "4"),
                ("x", "0")
            ]
        );
        assert_eq!(p.items[4].line, 2);
        assert_eq!(p.warnings.len(), 1);
        assert!(!parse_json("{\"uwsgi\": {\"a\": }", "uwsgi")
            .errors
            .is_empty());
        assert!(!parse_json("{\"app\": {}}", "uwsgi").found_section);
    }

    #[test]
    fn xml_follows_uwsgi() {
        let p = parse_xml(
            "<?xml version=\"1.0\"?>\n<!-- c -->\n<uwsgi>\n  <socket>:3031</socket>\n  <master/>\n  \
             <module>a&amp;b</module>\n</uwsgi>\n",
            "uwsgi",
        );
        assert_eq!(
            kv(&p),
            vec![("socket", ":3031"), ("master", "1"), ("module", "a&b")]
        );
        assert_eq!(p.items[0].line, 4);
        let p = parse_xml("<uwsgi id=\"dev\"><processes>2</processes></uwsgi>", "dev");
        assert_eq!(kv(&p), vec![("processes", "2")]);
        assert!(!parse_xml("<uwsgi><a>1</a>", "uwsgi").errors.is_empty());
    }
}
