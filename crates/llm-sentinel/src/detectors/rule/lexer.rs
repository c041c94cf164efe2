//! The rule language's lexer: splits an expression into numbers, strings,
//! windows, names and symbols, each with its byte offset.

use super::parser::{ParseError, error};
use crate::detector::{Millis, parse_duration};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok<'s> {
    Num(f64),
    Str(String),
    Dur(Millis),
    Word(&'s str),
    Sym(&'static str),
    End,
}

const SYMS: [&str; 18] =
    ["||", "&&", "==", "!=", ">=", "<=", ">", "<", "!", "+", "-", "*", "/", "(", ")", "[", "]", ","];

fn skip(b: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while b.get(i).is_some_and(|&c| f(c)) {
        i += 1;
    }
    i
}

pub(super) fn lex(src: &str) -> Result<Vec<(Tok<'_>, usize)>, ParseError> {
    let b = src.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let at = i;
        let tok = if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit() {
            i = skip(b, i, |c| c.is_ascii_digit());
            if b.get(i) == Some(&b'.') {
                let end = skip(b, i + 1, |c| c.is_ascii_digit());
                if end == i + 1 {
                    return Err(error(i, "expected digits after `.`"));
                }
                i = end;
            }
            if matches!(b.get(i), Some(b'e' | b'E')) {
                let sign = usize::from(matches!(b.get(i + 1), Some(b'+' | b'-')));
                let end = skip(b, i + 1 + sign, |c| c.is_ascii_digit());
                if end > i + 1 + sign {
                    i = end;
                }
            }
            if b.get(i).is_some_and(|&c| word(c)) {
                i = skip(b, i, word);
                Tok::Dur(parse_duration(&src[at..i]).map_err(|m| error(at, format!("bad window: {m}")))?)
            } else {
                match src[at..i].parse::<f64>() {
                    Ok(x) if x.is_finite() => Tok::Num(x),
                    _ => return Err(error(at, "number out of range")),
                }
            }
        } else if c == b'"' {
            let mut s = String::new();
            i += 1;
            loop {
                let rest = &src[i..];
                let Some(j) = rest.find(['"', '\\']) else { return Err(error(at, "unterminated string")) };
                s.push_str(&rest[..j]);
                i += j;
                if b[i] == b'"' {
                    i += 1;
                    break;
                }
                match b.get(i + 1) {
                    Some(&c @ (b'"' | b'\\')) => s.push(char::from(c)),
                    _ => return Err(error(i, r#"unknown escape: only \" and \\ are allowed"#)),
                }
                i += 2;
            }
            Tok::Str(s)
        } else if c.is_ascii_alphabetic() || c == b'_' {
            i = skip(b, i, word);
            while b.get(i) == Some(&b'.') {
                if !b.get(i + 1).is_some_and(|&c| word(c)) {
                    return Err(error(i, "expected a name after `.`"));
                }
                i = skip(b, i + 1, word);
            }
            Tok::Word(&src[at..i])
        } else if let Some(sym) = SYMS.iter().find(|s| src[i..].starts_with(**s)) {
            i += sym.len();
            Tok::Sym(sym)
        } else {
            let ch = src[i..].chars().next().unwrap_or_default();
            return Err(error(at, format!("unexpected character `{ch}`")));
        };
        toks.push((tok, at));
    }
    toks.push((Tok::End, src.len()));
    Ok(toks)
}

pub(super) fn describe(t: &Tok<'_>) -> String {
    match t {
        Tok::Num(_) => "a number".into(),
        Tok::Str(_) => "a string".into(),
        Tok::Dur(_) => "a window".into(),
        Tok::Word(w) => format!("`{w}`"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::End => "the end".into(),
    }
}
