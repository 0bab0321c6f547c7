//! Python-style formatting for the examples' output: `repr()` of a `str`
//! and `str()` of a socket address tuple.
//!
//! Kept free of dependencies so that `fuzz/` can include it with `#[path]`.

use std::net::SocketAddr;

/// Python's `repr()` of a `str`, enough for the spec's `{!r}` formats:
/// single quotes unless the text contains `'` and no `"`, with `\\`, the
/// quote, `\n`, `\r`, `\t` and other control characters escaped.
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
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
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
