//! Maps byte ranges of a normalized text back to the original text.
//!
//! The normalized text is built left to right from pieces of the original:
//! long stretches copied verbatim (identity runs) and short replaced pieces
//! (a homoglyph folded to ASCII, a tag character decoded, an invisible
//! character dropped). One entry per piece, binary-searched on lookup, keeps
//! the map small for the common mostly-ASCII prompt.

use crate::types::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Start of the piece in the normalized text.
    out: u32,
    /// Its length in the normalized text.
    out_len: u32,
    /// Start of its source in the original text.
    orig: u32,
    /// Length of its source in the original text.
    orig_len: u32,
    /// True when the piece is a verbatim copy (byte i maps to byte i).
    identity: bool,
}

/// A map from normalized byte offsets to original byte offsets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpanMap {
    runs: Vec<Run>,
    out_len: u32,
}

impl SpanMap {
    /// An empty map, to be filled with [`push_identity`](Self::push_identity)
    /// and [`push_mapped`](Self::push_mapped) in output order.
    pub fn new() -> SpanMap {
        SpanMap::default()
    }

    /// Records that the next `len` output bytes are a verbatim copy of the
    /// original starting at `orig`.
    pub fn push_identity(&mut self, orig: usize, len: usize) {
        if len == 0 {
            return;
        }
        let (orig, len) = (orig as u32, len as u32);
        if let Some(last) = self.runs.last_mut()
            && last.identity
            && last.orig + last.orig_len == orig
            && last.out + last.out_len == self.out_len
        {
            last.out_len += len;
            last.orig_len += len;
            self.out_len += len;
            return;
        }
        self.runs.push(Run { out: self.out_len, out_len: len, orig, orig_len: len, identity: true });
        self.out_len += len;
    }

    /// Records that the next `out_len` output bytes stand for the original
    /// bytes `orig`.
    pub fn push_mapped(&mut self, orig: Span, out_len: usize) {
        if out_len == 0 {
            return;
        }
        self.runs.push(Run {
            out: self.out_len,
            out_len: out_len as u32,
            orig: orig.start as u32,
            orig_len: orig.len() as u32,
            identity: false,
        });
        self.out_len += out_len as u32;
    }

    /// Number of output bytes mapped so far.
    pub fn out_len(&self) -> usize {
        self.out_len as usize
    }

    fn run_at(&self, pos: u32) -> Option<&Run> {
        // Last run whose start is <= pos.
        let idx = self.runs.partition_point(|r| r.out <= pos);
        idx.checked_sub(1).and_then(|i| self.runs.get(i))
    }

    /// Maps a normalized range to the original range that produced it.
    pub fn to_original(&self, start: usize, end: usize) -> Span {
        if self.runs.is_empty() {
            return Span::new(0, 0);
        }
        let end = (end as u32).min(self.out_len);
        let start = (start as u32).min(end);
        if start == self.out_len {
            let last = self.runs.last().map_or(0, |r| r.orig + r.orig_len) as usize;
            return Span::new(last, last);
        }
        let Some(first) = self.run_at(start) else {
            return Span::new(0, 0);
        };
        let s = if first.identity { first.orig + (start - first.out) } else { first.orig };
        if end <= start {
            return Span::new(s as usize, s as usize);
        }
        let Some(last) = self.run_at(end - 1) else {
            return Span::new(s as usize, s as usize);
        };
        let e = if last.identity { last.orig + (end - last.out) } else { last.orig + last.orig_len };
        Span::new(s as usize, e.max(s) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_runs_merge_and_map_exactly() {
        let mut m = SpanMap::new();
        m.push_identity(0, 5);
        m.push_identity(5, 5);
        assert_eq!(m.runs.len(), 1);
        assert_eq!(m.to_original(2, 7), Span::new(2, 7));
    }

    #[test]
    fn replaced_piece_maps_to_its_whole_source() {
        // "a" + "x" (from a 3-byte char at 1..4) + "b" (at 4)
        let mut m = SpanMap::new();
        m.push_identity(0, 1);
        m.push_mapped(Span::new(1, 4), 1);
        m.push_identity(4, 1);
        assert_eq!(m.to_original(1, 2), Span::new(1, 4));
        assert_eq!(m.to_original(0, 3), Span::new(0, 5));
        assert_eq!(m.to_original(2, 3), Span::new(4, 5));
    }

    #[test]
    fn skipped_source_bytes_are_covered_when_inside_a_range() {
        // "ab" where 3 invisible bytes sat between a and b.
        let mut m = SpanMap::new();
        m.push_identity(0, 1);
        m.push_identity(4, 1);
        assert_eq!(m.to_original(0, 2), Span::new(0, 5));
    }
}
