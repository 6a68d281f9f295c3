//! The chunk-size line of a chunked body (RFC 9112 §7.1):
//! `chunk-size [ chunk-ext ] CRLF`, with extensions checked and then ignored.

use super::HttpError;

/// Parses a chunk-size line without its CRLF.
///
/// ```text
/// chunk-size = 1*HEXDIG
/// chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-name = token ; chunk-ext-val = token / quoted-string
/// ```
///
/// Whitespace is allowed only where BWS is: `5 ;a=b` is fine, `5 ` and ` 5` are not —
/// a size that different parsers read differently is how chunked smuggling starts.
pub(super) fn parse_chunk_size_line(line: &[u8]) -> Result<u64, HttpError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(HttpError::Malformed(
            "chunk size is not a hexadecimal number",
        ));
    }
    let mut size: u64 = 0;
    for &digit in &line[..digits] {
        let value = (digit as char).to_digit(16).expect("checked hex digit") as u64;
        size = size
            .checked_mul(16)
            .and_then(|size| size.checked_add(value))
            .ok_or(HttpError::Malformed("chunk size too large"))?;
    }
    check_extensions(&line[digits..])?;
    Ok(size)
}

/// Checks `*( BWS ";" BWS name [ BWS "=" BWS value ] )`, which must span all of `rest`.
fn check_extensions(mut rest: &[u8]) -> Result<(), HttpError> {
    const BAD: HttpError = HttpError::Malformed("invalid chunk size line or chunk extension");
    while !rest.is_empty() {
        rest = skip_whitespace(rest);
        let Some(after_semicolon) = rest.strip_prefix(b";") else {
            return Err(BAD);
        };
        rest = skip_whitespace(after_semicolon);
        let name_len = token_len(rest);
        if name_len == 0 {
            return Err(BAD);
        }
        rest = &rest[name_len..];
        let after_name = skip_whitespace(rest);
        if let Some(after_equals) = after_name.strip_prefix(b"=") {
            rest = skip_whitespace(after_equals);
            let value_len = if rest.first() == Some(&b'"') {
                quoted_string_len(rest).ok_or(BAD)?
            } else {
                token_len(rest)
            };
            if value_len == 0 {
                return Err(BAD);
            }
            rest = &rest[value_len..];
        } else if !after_name.is_empty() && after_name[0] != b';' {
            return Err(BAD);
        }
    }
    Ok(())
}

fn skip_whitespace(bytes: &[u8]) -> &[u8] {
    let spaces = bytes
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    &bytes[spaces..]
}

fn token_len(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|&&b| is_tchar(b)).count()
}

/// tchar (RFC 9110 §5.6.2).
pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Length of a quoted-string (RFC 9110 §5.6.4) at the start of `bytes`, quotes included.
fn quoted_string_len(bytes: &[u8]) -> Option<usize> {
    let mut i = 1;
    loop {
        match *bytes.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                if !is_quotable(*bytes.get(i + 1)?) {
                    return None;
                }
                i += 2;
            }
            b if is_quotable(b) => i += 1,
            _ => return None,
        }
    }
}

/// HTAB / SP / VCHAR / obs-text: what may appear in a quoted-string, escaped or not.
fn is_quotable(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_chunk_size_line(b"0"), Ok(0));
        assert_eq!(parse_chunk_size_line(b"1e"), Ok(30));
        assert_eq!(parse_chunk_size_line(b"A"), Ok(10));
        assert_eq!(parse_chunk_size_line(b"0005"), Ok(5));
        assert_eq!(parse_chunk_size_line(b"ffffffffffffffff"), Ok(u64::MAX));
        assert_eq!(parse_chunk_size_line(b"0000000000000000000001"), Ok(1));
    }

    #[test]
    fn bad_sizes() {
        for line in [
            &b""[..],
            b"10000000000000000",
            b"-5",
            b"+5",
            b" 5",
            b"5 ",
            b"6_0",
            b"x",
            b"0x5",
        ] {
            assert!(
                matches!(parse_chunk_size_line(line), Err(HttpError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn extensions() {
        for line in [
            &b"5;a"[..],
            b"5; some; parameters=stuff",
            b"5 ;a = b",
            b"5;foo=\"bar baz\"",
            b"5;q=\"a\\\"b\";r",
            b"5\t;\ta\t=\tb",
        ] {
            assert_eq!(
                parse_chunk_size_line(line),
                Ok(5),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        for line in [
            &b"5;"[..],
            b"5;a=",
            b"5;=b",
            b"5;a b",
            b"5;a=b ",
            b"5;a=\"unterminated",
            b"5;ext=val\rue",
            b"5;a=\"\x01\"",
            b" ;foo=bar",
        ] {
            assert!(
                matches!(parse_chunk_size_line(line), Err(HttpError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }
}
