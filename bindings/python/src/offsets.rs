//! Byte offsets of the engine's spans as Python string indices.
//!
//! The engine reports spans as UTF-8 byte offsets into the text; Python
//! slices strings by code point. For ASCII text the two agree; otherwise
//! every offset a result needs is mapped in one pass over the text.

/// Maps byte offsets of one text to code-point offsets.
#[derive(Debug)]
pub(crate) struct CharOffsets {
    /// `(byte, char)` pairs for every offset asked for, sorted by byte;
    /// empty when the text is ASCII (the identity).
    table: Vec<(usize, usize)>,
}

impl CharOffsets {
    /// A map covering `bytes` (offsets into `text`, in any order).
    pub(crate) fn new(text: &str, bytes: impl IntoIterator<Item = usize>) -> CharOffsets {
        if text.is_ascii() {
            return CharOffsets { table: Vec::new() };
        }
        let mut wanted: Vec<usize> = bytes.into_iter().map(|b| b.min(text.len())).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut table = Vec::with_capacity(wanted.len());
        let (mut byte, mut chars) = (0usize, 0usize);
        for b in wanted {
            // Spans lie on character boundaries; an offset inside a
            // character counts the characters that start before it.
            chars += text.as_bytes()[byte..b].iter().filter(|&&x| !is_continuation(x)).count();
            byte = b;
            table.push((b, chars));
        }
        CharOffsets { table }
    }

    /// The code-point offset of byte offset `b` (one passed to `new`).
    pub(crate) fn get(&self, b: usize) -> usize {
        if self.table.is_empty() {
            return b;
        }
        match self.table.binary_search_by_key(&b, |&(byte, _)| byte) {
            Ok(i) => self.table[i].1,
            // Not asked for: clamp to the nearest mapped offset below.
            Err(0) => 0,
            Err(i) => self.table[i - 1].1,
        }
    }
}

/// True for the second to fourth bytes of a UTF-8 sequence.
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Maps byte offsets into a text that arrives in pieces (a stream) to
/// code-point offsets, keeping only the end of the text.
///
/// Offsets before the kept end are not asked for: the caller keeps at least
/// as much as the stream may still report spans in. While the text is
/// ASCII nothing is kept at all.
#[derive(Debug, Default)]
pub(crate) struct StreamOffsets {
    /// The text from byte `start_byte` on (empty while everything is ASCII).
    tail: String,
    /// Byte offset of `tail` in the whole text.
    start_byte: usize,
    /// Code-point offset of `tail` in the whole text.
    start_char: usize,
}

impl StreamOffsets {
    /// Appends the next piece of the text.
    pub(crate) fn push(&mut self, piece: &str) {
        if self.tail.is_empty() && piece.is_ascii() {
            // Everything so far is ASCII: bytes are code points.
            self.start_byte += piece.len();
            self.start_char += piece.len();
            return;
        }
        self.tail.push_str(piece);
    }

    /// The code-point offset of byte offset `b` of the whole text. An offset
    /// inside a character counts the characters that start before it; one
    /// before the kept end (not asked for) maps as if the text were ASCII.
    pub(crate) fn get(&self, b: usize) -> usize {
        if b <= self.start_byte {
            return self.start_char - (self.start_byte - b).min(self.start_char);
        }
        let within = (b - self.start_byte).min(self.tail.len());
        self.start_char + self.tail.as_bytes()[..within].iter().filter(|&&x| !is_continuation(x)).count()
    }

    /// Forgets all but the last `keep` bytes (rounded to a character
    /// boundary).
    pub(crate) fn keep_last(&mut self, keep: usize) {
        if self.tail.len() <= keep {
            return;
        }
        let mut cut = self.tail.len() - keep;
        while !self.tail.is_char_boundary(cut) {
            cut += 1;
        }
        self.start_char += self.tail[..cut].chars().count();
        self.start_byte += cut;
        self.tail.drain(..cut);
    }
}
