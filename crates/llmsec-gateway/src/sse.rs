//! An incremental parser of server-sent events, as model providers stream
//! them: events end at a blank line; `data:` lines of one event are joined
//! with `\n`; `event:` names the event; comments (`:`) and other fields are
//! ignored. Bytes arrive in arbitrary pieces (a line, an event or a UTF-8
//! character may be split anywhere).

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Event {
    /// The `event:` field, when present.
    pub name: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Why a stream cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    /// One event is larger than the limit.
    #[error("an upstream event is larger than {0} bytes")]
    TooLarge(usize),
    /// An event is not UTF-8.
    #[error("an upstream event is not UTF-8")]
    NotUtf8,
}

/// The parser's state between pieces.
#[derive(Debug)]
pub(crate) struct Parser {
    buf: Vec<u8>,
    /// Where the search for the next line end resumes.
    scanned: usize,
    current: Event,
    has_data: bool,
    max_event_bytes: usize,
}

impl Parser {
    /// A parser refusing events over `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Parser {
        Parser { buf: Vec::new(), scanned: 0, current: Event::default(), has_data: false, max_event_bytes }
    }

    /// Feeds a piece; returns the events it completes.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Event>, SseError> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = self.scanned;
        while let Some(off) = memchr_newline(&self.buf[i..]) {
            let end = i + off;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = std::str::from_utf8(line).map_err(|_| SseError::NotUtf8)?.to_owned();
            self.line(&line, &mut out);
            start = end + 1;
            i = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        if self.buf.len() + self.current.data.len() > self.max_event_bytes {
            return Err(SseError::TooLarge(self.max_event_bytes));
        }
        Ok(out)
    }

    fn line(&mut self, line: &str, out: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data {
                out.push(std::mem::take(&mut self.current));
            }
            self.current = Event::default();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.current.name = Some(value.to_owned()),
            _ => {}
        }
    }

    /// The event left without its blank line when the stream ended, if any.
    pub fn finish(&mut self) -> Option<Event> {
        let rest = std::mem::take(&mut self.buf);
        if let Ok(line) = std::str::from_utf8(&rest) {
            let line = line.trim_end_matches('\r').to_owned();
            if !line.is_empty() {
                let mut sink = Vec::new();
                self.line(&line, &mut sink);
            }
        }
        self.has_data.then(|| {
            self.has_data = false;
            std::mem::take(&mut self.current)
        })
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(pieces: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new(1 << 20);
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(p.push(piece).unwrap());
        }
        out.extend(p.finish());
        out
    }

    #[test]
    fn data_lines_comments_names_and_crlf() {
        let raw = b": keep-alive\n\ndata: {\"a\":1}\n\nevent: error\ndata: line1\r\ndata:line2\r\n\r\ndata: [DONE]\n\n";
        let ev = parse_all(&[raw]);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[0], Event { name: None, data: "{\"a\":1}".into() });
        assert_eq!(ev[1], Event { name: Some("error".into()), data: "line1\nline2".into() });
        assert_eq!(ev[2].data, "[DONE]");
    }

    #[test]
    fn an_event_without_its_blank_line_is_returned_at_the_end() {
        assert_eq!(parse_all(&[b"data: x\n\ndata: y"]).iter().map(|e| e.data.as_str()).collect::<Vec<_>>(), ["x", "y"]);
    }

    #[test]
    fn oversized_events_are_refused() {
        let mut p = Parser::new(16);
        assert_eq!(p.push(b"data: 0123456789abcdefghij").unwrap_err(), SseError::TooLarge(16));
    }

    proptest! {
        /// However the bytes are split (inside lines, CRLFs and UTF-8
        /// characters too), the events are the same.
        #[test]
        fn any_split_gives_the_same_events(
            datas in proptest::collection::vec("[a-zé€{}\":, ]{0,20}", 1..8),
            cuts in proptest::collection::vec(0usize..400, 0..10),
            crlf in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let raw: String = datas.iter().map(|d| format!("data: {d}{nl}{nl}")).collect();
            let bytes = raw.as_bytes();
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.extend([0, bytes.len()]);
            points.sort_unstable();
            points.dedup();
            let pieces: Vec<&[u8]> = points.windows(2).map(|w| &bytes[w[0]..w[1]]).collect();
            let got: Vec<String> = parse_all(&pieces).into_iter().map(|e| e.data).collect();
            prop_assert_eq!(got, datas);
        }
    }
}
