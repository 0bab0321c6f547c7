//! Python-style formatting for the examples' output: `repr()` of a `str`
//! and `str()` of a socket address tuple.
//!
//! Kept free of dependencies so that `fuzz/` can include it with `#[path]`.

use std::net::SocketAddr;

/// Python's `repr()` of a `str`, for the spec's `{!r}` formats: single
/// quotes unless the text contains `'` and no `"`; `\\`, the quote, `\n`,
/// `\r`, `\t` escaped; characters Python does not print (controls, format
/// characters, separators other than the ASCII space, private use) escaped
/// as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
///
/// One known difference: Python also escapes *unassigned* code points, which
/// needs Unicode tables this dependency-free helper does not carry; they are
/// printed raw here.
pub(crate) fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let n = u32::from(c);
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x1_0000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one character, except that unassigned
/// code points count as printable: false for the categories Cc, Cf, Zl, Zp,
/// Zs (but the ASCII space) and Co.
fn is_printable(c: char) -> bool {
    !matches!(u32::from(c),
        // Cc
        0x00..=0x1f | 0x7f..=0x9f
        // Zs other than ' ', Zl, Zp
        | 0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f | 0x205f | 0x3000
        // Cf
        | 0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890 | 0x891 | 0x8e2 | 0x180e
        | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f | 0xfeff
        | 0xfff9..=0xfffb | 0x110bd | 0x110cd | 0x13430..=0x1343f | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a | 0xe0001 | 0xe0020..=0xe007f
        // Co
        | 0xe000..=0xf8ff | 0xf_0000..=0xf_fffd | 0x10_0000..=0x10_fffd)
}

/// Python's `str()` of a socket address tuple, as `get_extra_info('peername')`
/// prints: `('127.0.0.1', 8888)` or `('::1', 8888, 0, 0)`.
pub(crate) fn py_addr(addr: Option<SocketAddr>) -> String {
    match addr {
        None => "None".to_owned(),
        Some(SocketAddr::V4(a)) => format!("('{}', {})", a.ip(), a.port()),
        Some(SocketAddr::V6(a)) => {
            format!(
                "('{}', {}, {}, {})",
                a.ip(),
                a.port(),
                a.flowinfo(),
                a.scope_id()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_python_escapes() {
        // python3 -c "print(repr('\x85\xa0\xad\u2028\ue000'))"
        assert_eq!(
            py_repr("\u{85}\u{a0}\u{ad}\u{2028}\u{e000}"),
            r"'\x85\xa0\xad\u2028\ue000'"
        );
        // The fuzzer's input.
        assert_eq!(py_repr("ϒ\u{92}"), r"'ϒ\x92'");
        assert_eq!(py_repr("\u{10fffd}"), r"'\U0010fffd'");
    }

    #[test]
    fn quotes_and_ascii_like_python() {
        assert_eq!(py_repr("Hello World!"), "'Hello World!'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("both ' and \""), r#"'both \' and "'"#);
        assert_eq!(py_repr("a\\b\n\x7f"), r"'a\\b\n\x7f'");
    }
}
