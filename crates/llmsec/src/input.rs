//! Reading the text to scan: from an argument, a file or stdin, as UTF-8.
//!
//! Invalid UTF-8 is an error naming the first bad byte unless the caller
//! asked for lossy decoding (U+FFFD in place of each bad sequence). A text
//! over the engine's `max_input_bytes` is refused with the engine's own
//! [`llm_security::Error::InputTooLarge`] without being held in memory, and
//! never truncated. JSON-lines input is read one bounded line at a time.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::PathBuf;

/// Where a single text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The command-line argument itself.
    Arg(OsString),
    /// A file.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

impl Source {
    /// The source the `TEXT` argument and `--file` pick: `-` for either, or
    /// neither given, means stdin.
    pub fn from_args(text: Option<&OsString>, file: Option<&PathBuf>) -> Source {
        match (text, file) {
            (Some(t), _) if t == "-" => Source::Stdin,
            (Some(t), _) => Source::Arg(t.clone()),
            (None, Some(p)) if p.as_os_str() == "-" => Source::Stdin,
            (None, Some(p)) => Source::File(p.clone()),
            (None, None) => Source::Stdin,
        }
    }

    /// How errors name the source.
    pub fn name(&self) -> String {
        match self {
            Source::Arg(_) => "the TEXT argument".to_owned(),
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "stdin".to_owned(),
        }
    }
}

/// What can go wrong while reading input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The bytes are not UTF-8 and lossy decoding was not asked for.
    #[error("{source_name}: invalid UTF-8 at byte {offset} (pass --lossy to replace invalid bytes with U+FFFD)")]
    InvalidUtf8 {
        /// The file, stdin or argument.
        source_name: String,
        /// Offset of the first byte that is not valid UTF-8.
        offset: usize,
    },
    /// Opening or reading failed.
    #[error("cannot read {name}")]
    Io {
        /// The file or stdin.
        name: String,
        /// The underlying error.
        #[source]
        err: io::Error,
    },
    /// The text is longer than the engine accepts. The engine's message is
    /// part of this one, so it is not also the error's source (a report
    /// that prints the chain would repeat it).
    #[error("{source_name}: {err}")]
    Engine {
        /// The file, stdin or argument.
        source_name: String,
        /// The engine's error.
        err: llm_security::Error,
    },
}

/// Decodes `bytes` as UTF-8, or lossily when `lossy` is set.
pub fn decode(bytes: Vec<u8>, lossy: bool, source_name: &str) -> Result<String, InputError> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) if lossy => Ok(String::from_utf8_lossy(e.as_bytes()).into_owned()),
        Err(e) => {
            Err(InputError::InvalidUtf8 { source_name: source_name.to_owned(), offset: e.utf8_error().valid_up_to() })
        }
    }
}

/// Reads the whole text from `source`, refusing more than `max` bytes.
pub fn read_text(source: &Source, lossy: bool, max: usize) -> Result<String, InputError> {
    let name = source.name();
    let io_err = |err| InputError::Io { name: name.clone(), err };
    let bytes = match source {
        // Arguments are short; the engine itself checks their length.
        Source::Arg(s) => Ok(s.as_encoded_bytes().to_vec()),
        Source::File(p) => {
            let mut f = File::open(p).map_err(io_err)?;
            read_bounded(&mut f, max).map_err(io_err)?
        }
        Source::Stdin => read_bounded(&mut io::stdin().lock(), max).map_err(io_err)?,
    };
    let bytes = bytes.map_err(|len| InputError::Engine {
        source_name: name.clone(),
        err: llm_security::Error::InputTooLarge { len, max },
    })?;
    decode(bytes, lossy, &name)
}

/// Reads all of `r` if it holds at most `max` bytes; otherwise drains it
/// without keeping it and returns its length as the inner error. (Lossy
/// decoding only ever lengthens text, so a raw length over `max` is over
/// `max` after decoding too.)
fn read_bounded(r: &mut impl Read, max: usize) -> io::Result<Result<Vec<u8>, usize>> {
    let mut buf = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let n = r.by_ref().take(limit).read_to_end(&mut buf)?;
    if n <= max {
        return Ok(Ok(buf));
    }
    let rest = io::copy(r, &mut io::sink())?;
    let rest = usize::try_from(rest).unwrap_or(usize::MAX);
    Ok(Err(n.saturating_add(rest)))
}

/// How long a JSON line may be: the engine's text limit with room for JSON
/// escapes (`\u00e9` is six bytes for two) and other fields.
pub fn jsonl_line_limit(max_input_bytes: usize) -> usize {
    max_input_bytes.saturating_mul(6).saturating_add(64 * 1024)
}

/// One line of JSON-lines input.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// The line's bytes, without the `\n` (or `\r\n`).
    Bytes(Vec<u8>),
    /// The line was longer than the limit; it was skipped, not stored.
    TooLong,
}

/// Reads lines of at most `limit` bytes, one at a time, so a huge line or
/// file never sits in memory.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    limit: usize,
    line_no: usize,
}

impl<R: BufRead> LineReader<R> {
    /// Reads `reader`, refusing lines longer than `limit` bytes.
    pub fn new(reader: R, limit: usize) -> LineReader<R> {
        LineReader { reader, limit, line_no: 0 }
    }

    /// The 1-based number of the line last returned.
    pub fn line_no(&self) -> usize {
        self.line_no
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        let mut buf = Vec::new();
        let cap = u64::try_from(self.limit).unwrap_or(u64::MAX).saturating_add(1);
        let n = (&mut self.reader).take(cap).read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(Line::Bytes(buf)));
        }
        if buf.len() > self.limit {
            skip_line(&mut self.reader)?;
            return Ok(Some(Line::TooLong));
        }
        // The last line, without a final newline.
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(Line::Bytes(buf)))
    }
}

/// Consumes the rest of the current line, newline included.
fn skip_line(r: &mut impl BufRead) -> io::Result<()> {
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                r.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                r.consume(n);
            }
        }
    }
}

/// Opens a JSON-lines file, or stdin for `-`.
pub fn open_lines(path: &std::path::Path) -> Result<Box<dyn BufRead>, InputError> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let f = File::open(path).map_err(|err| InputError::Io { name: path.display().to_string(), err })?;
    Ok(Box::new(io::BufReader::with_capacity(64 * 1024, f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_refusal_is_reported_once() {
        let e = InputError::Engine {
            source_name: "stdin".into(),
            err: llm_security::Error::InputTooLarge { len: 2_000_000, max: 1_048_576 },
        };
        let report = format!("{:#}", anyhow::Error::from(e));
        assert_eq!(report.matches("1048576").count(), 1, "{report}");
        assert!(report.starts_with("stdin: "), "{report}");
    }

    #[test]
    fn decode_names_the_first_bad_byte() {
        let mut bytes = b"hello ".to_vec();
        bytes.push(0xff);
        bytes.extend_from_slice(b" world");
        let e = decode(bytes.clone(), false, "stdin").err();
        assert!(matches!(e, Some(InputError::InvalidUtf8 { offset: 6, .. })), "{e:?}");
        let msg = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("invalid UTF-8 at byte 6"), "{msg}");
        assert_eq!(decode(bytes, true, "stdin").ok().as_deref(), Some("hello \u{FFFD} world"));
    }

    #[test]
    fn decode_reports_a_truncated_multibyte_sequence() {
        // "é" is C3 A9; a lone C3 at the end is invalid.
        let e = decode(b"caf\xc3".to_vec(), false, "x").err();
        assert!(matches!(e, Some(InputError::InvalidUtf8 { offset: 3, .. })), "{e:?}");
    }

    #[test]
    fn read_bounded_keeps_small_inputs_and_measures_large_ones() {
        let small = read_bounded(&mut &b"abc"[..], 3).ok();
        assert_eq!(small, Some(Ok(b"abc".to_vec())));
        let large = read_bounded(&mut &[b'x'; 100][..], 10).ok();
        assert_eq!(large, Some(Err(100)));
        let empty = read_bounded(&mut &b""[..], 10).ok();
        assert_eq!(empty, Some(Ok(Vec::new())));
    }

    #[test]
    fn source_dash_means_stdin() {
        let dash = OsString::from("-");
        assert_eq!(Source::from_args(Some(&dash), None), Source::Stdin);
        assert_eq!(Source::from_args(None, Some(&PathBuf::from("-"))), Source::Stdin);
        assert_eq!(Source::from_args(None, None), Source::Stdin);
        let t = OsString::from("hi");
        assert_eq!(Source::from_args(Some(&t), None), Source::Arg(t.clone()));
    }

    #[test]
    fn read_text_refuses_oversize_files_with_the_engine_error() {
        let src = Source::Arg(OsString::from("hello"));
        assert_eq!(read_text(&src, false, 5).ok().as_deref(), Some("hello"));
        // Arguments are checked by the engine itself; files and stdin here.
        let dir = std::env::temp_dir().join(format!("llmsec-input-oversize-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("big.txt");
        assert!(std::fs::write(&path, "0123456789").is_ok());
        let e = read_text(&Source::File(path.clone()), false, 4).err();
        match e {
            Some(InputError::Engine { err: llm_security::Error::InputTooLarge { len, max }, .. }) => {
                assert_eq!((len, max), (10, 4))
            }
            other => panic!("expected InputTooLarge, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn lines(input: &[u8], limit: usize) -> Vec<(usize, Line)> {
        let mut r = LineReader::new(input, limit);
        let mut out = Vec::new();
        while let Ok(Some(l)) = r.next_line() {
            out.push((r.line_no(), l));
        }
        out
    }

    #[test]
    fn line_limit_leaves_room_for_escapes_and_never_overflows() {
        assert_eq!(jsonl_line_limit(10), 60 + 64 * 1024);
        assert_eq!(jsonl_line_limit(usize::MAX), usize::MAX);
    }

    #[test]
    fn line_reader_splits_lf_and_crlf_and_a_last_line_without_newline() {
        let got = lines(b"a\r\nbb\n\nccc", 10);
        assert_eq!(
            got,
            vec![
                (1, Line::Bytes(b"a".to_vec())),
                (2, Line::Bytes(b"bb".to_vec())),
                (3, Line::Bytes(Vec::new())),
                (4, Line::Bytes(b"ccc".to_vec())),
            ]
        );
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn line_reader_skips_an_overlong_line_and_keeps_counting() {
        let got = lines(b"ok\n0123456789abcdef\nnext\n", 8);
        assert_eq!(
            got,
            vec![(1, Line::Bytes(b"ok".to_vec())), (2, Line::TooLong), (3, Line::Bytes(b"next".to_vec())),]
        );
        // Exactly at the limit is fine.
        assert_eq!(lines(b"12345678\n", 8), vec![(1, Line::Bytes(b"12345678".to_vec()))]);
    }
}
