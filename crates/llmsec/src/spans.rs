//! Span-level precision and recall for entity data (`outputs-dev-ner.jsonl`,
//! `outputs-dev-pii.jsonl`): per entity type and language, with exact and
//! overlapping match.
//!
//! - **Exact**: a predicted span counts when a gold span of the same type
//!   has the same start and end; each gold span matches at most once.
//!   Precision = matched / predicted, recall = matched / gold.
//! - **Overlap**: a predicted span is correct when it shares a byte with a
//!   gold span of the same type (precision = such predictions /
//!   predicted); a gold span is found when some prediction of its type
//!   overlaps it (recall = such gold spans / gold).
//!
//! Types are compared after [`canonical_type`]: the engine's categories
//! (`person`, `location`, `organization`, `address`, `date_of_birth`) and
//! the datasets' (`PERSON`, `GPE`, `STREET_ADDRESS`…) meet on one name.

use std::collections::BTreeMap;

use serde::Serialize;

/// One span: type (canonical), start and end byte.
pub type TypedSpan = (&'static str, usize, usize);

/// The shared name of an engine category or a dataset type; `None` for
/// types neither side scores here.
pub fn canonical_type(t: &str) -> Option<&'static str> {
    Some(match t {
        "PERSON" | "PER" | "person" => "PERSON",
        "LOCATION" | "LOC" | "GPE" | "location" => "LOCATION",
        "ORGANIZATION" | "ORG" | "organization" => "ORGANIZATION",
        "STREET_ADDRESS" | "address" => "STREET_ADDRESS",
        "DATE_OF_BIRTH" | "date_of_birth" => "DATE_OF_BIRTH",
        _ => return None,
    })
}

/// Counts for one type (and language).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpanCounts {
    /// Gold spans.
    pub gold: u64,
    /// Predicted spans.
    pub predicted: u64,
    /// Predictions equal to a gold span (each gold span once).
    pub exact: u64,
    /// Gold spans that some prediction overlaps.
    pub gold_overlapped: u64,
    /// Predictions that overlap some gold span.
    pub predicted_overlapping: u64,
}

fn overlap(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

impl SpanCounts {
    /// Counts of one row's gold and predicted spans, all of one type.
    pub fn of(gold: &[(usize, usize)], predicted: &[(usize, usize)]) -> SpanCounts {
        let mut used = vec![false; gold.len()];
        let mut exact = 0;
        for p in predicted {
            if let Some(i) = gold.iter().enumerate().position(|(i, g)| !used[i] && g == p) {
                used[i] = true;
                exact += 1;
            }
        }
        SpanCounts {
            gold: gold.len() as u64,
            predicted: predicted.len() as u64,
            exact,
            gold_overlapped: gold.iter().filter(|&&g| predicted.iter().any(|&p| overlap(g, p))).count() as u64,
            predicted_overlapping: predicted.iter().filter(|&&p| gold.iter().any(|&g| overlap(g, p))).count() as u64,
        }
    }

    /// Adds another row's counts.
    pub fn add(&mut self, o: &SpanCounts) {
        self.gold += o.gold;
        self.predicted += o.predicted;
        self.exact += o.exact;
        self.gold_overlapped += o.gold_overlapped;
        self.predicted_overlapping += o.predicted_overlapping;
    }

    /// The four figures; `None` where the denominator is zero.
    pub fn figures(&self) -> SpanFigures {
        let r = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
        SpanFigures {
            exact_precision: r(self.exact, self.predicted),
            exact_recall: r(self.exact, self.gold),
            overlap_precision: r(self.predicted_overlapping, self.predicted),
            overlap_recall: r(self.gold_overlapped, self.gold),
        }
    }
}

/// Precision and recall, exact and overlapping.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SpanFigures {
    /// Exact-match precision.
    pub exact_precision: Option<f64>,
    /// Exact-match recall.
    pub exact_recall: Option<f64>,
    /// Overlap precision.
    pub overlap_precision: Option<f64>,
    /// Overlap recall.
    pub overlap_recall: Option<f64>,
}

/// Counts per (type, language), and the types any gold row carried.
#[derive(Debug, Default, Clone)]
pub struct SpanTally {
    counts: BTreeMap<(&'static str, String), SpanCounts>,
}

/// One line of a span report.
#[derive(Debug, Clone, Serialize)]
pub struct SpanLine {
    /// Entity type.
    pub entity: &'static str,
    /// Language, or `all`.
    pub lang: String,
    /// The counts.
    #[serde(flatten)]
    pub counts: SpanCounts,
    /// The figures.
    #[serde(flatten)]
    pub figures: SpanFigures,
}

impl SpanTally {
    /// Adds one row: its language, gold and predicted spans (canonical
    /// types). Predictions of a type are scored only for types in `scored`
    /// (the types the data annotates), so a dataset without addresses does
    /// not count address findings as false positives.
    pub fn row(&mut self, lang: &str, gold: &[TypedSpan], predicted: &[TypedSpan], scored: &[&'static str]) {
        for &ty in scored {
            let g: Vec<(usize, usize)> = gold.iter().filter(|s| s.0 == ty).map(|s| (s.1, s.2)).collect();
            let p: Vec<(usize, usize)> = predicted.iter().filter(|s| s.0 == ty).map(|s| (s.1, s.2)).collect();
            if g.is_empty() && p.is_empty() {
                continue;
            }
            let c = SpanCounts::of(&g, &p);
            self.counts.entry((ty, lang.to_owned())).or_default().add(&c);
            self.counts.entry((ty, "all".to_owned())).or_default().add(&c);
        }
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &SpanTally) {
        for (k, c) in &other.counts {
            self.counts.entry(k.clone()).or_default().add(c);
        }
    }

    /// One line per type and language (`all` first within a type).
    pub fn lines(&self) -> Vec<SpanLine> {
        let mut v: Vec<SpanLine> = self
            .counts
            .iter()
            .map(|((entity, lang), c)| SpanLine { entity, lang: lang.clone(), counts: *c, figures: c.figures() })
            .collect();
        v.sort_by(|a, b| {
            a.entity.cmp(b.entity).then((a.lang != "all").cmp(&(b.lang != "all"))).then(a.lang.cmp(&b.lang))
        });
        v
    }
}

/// Renders span lines as a text table.
pub fn write_table(w: &mut impl std::io::Write, lines: &[SpanLine]) -> std::io::Result<()> {
    let f = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    writeln!(
        w,
        "  {:<15} {:<4} {:>6} {:>6}  {:>9} {:>9}  {:>9} {:>9}",
        "entity", "lang", "gold", "pred", "exact P", "exact R", "overlap P", "overlap R"
    )?;
    for l in lines {
        writeln!(
            w,
            "  {:<15} {:<4} {:>6} {:>6}  {:>9} {:>9}  {:>9} {:>9}",
            l.entity,
            l.lang,
            l.counts.gold,
            l.counts.predicted,
            f(l.figures.exact_precision),
            f(l.figures.exact_recall),
            f(l.figures.overlap_precision),
            f(l.figures.overlap_recall)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_overlap_counts_on_a_small_fixture() {
        // gold: [0,5) [10,15) [20,25); predicted: [0,5) exact, [11,13) inside
        // the second, [30,35) nowhere.
        let c = SpanCounts::of(&[(0, 5), (10, 15), (20, 25)], &[(0, 5), (11, 13), (30, 35)]);
        assert_eq!(c, SpanCounts { gold: 3, predicted: 3, exact: 1, gold_overlapped: 2, predicted_overlapping: 2 });
        let f = c.figures();
        assert_eq!(f.exact_precision, Some(1.0 / 3.0));
        assert_eq!(f.exact_recall, Some(1.0 / 3.0));
        assert_eq!(f.overlap_precision, Some(2.0 / 3.0));
        assert_eq!(f.overlap_recall, Some(2.0 / 3.0));
    }

    #[test]
    fn a_gold_span_matches_exactly_once_and_touching_is_not_overlap() {
        let c = SpanCounts::of(&[(0, 5)], &[(0, 5), (0, 5), (5, 9)]);
        assert_eq!(c.exact, 1);
        assert_eq!(c.predicted_overlapping, 2);
        assert_eq!(c.gold_overlapped, 1);
        let none = SpanCounts::of(&[], &[]);
        assert_eq!(none.figures().exact_precision, None);
    }

    #[test]
    fn tally_scores_only_annotated_types_per_language() {
        let mut t = SpanTally::default();
        let gold = [("PERSON", 0, 4)];
        let pred = [("PERSON", 0, 4), ("STREET_ADDRESS", 10, 20), ("LOCATION", 30, 35)];
        t.row("en", &gold, &pred, &["PERSON", "LOCATION"]);
        t.row("de", &[("PERSON", 0, 3)], &[], &["PERSON", "LOCATION"]);
        let lines = t.lines();
        let get = |e: &str, l: &str| lines.iter().find(|x| x.entity == e && x.lang == l).map(|x| x.counts);
        assert_eq!(get("PERSON", "all").map(|c| (c.gold, c.exact)), Some((2, 1)));
        assert_eq!(get("PERSON", "de").map(|c| c.exact), Some(0));
        assert_eq!(get("LOCATION", "en").map(|c| (c.gold, c.predicted)), Some((0, 1)));
        assert!(get("STREET_ADDRESS", "all").is_none(), "not annotated: not scored");
        assert_eq!(canonical_type("GPE"), Some("LOCATION"));
        assert_eq!(canonical_type("address"), Some("STREET_ADDRESS"));
        assert_eq!(canonical_type("TITLE"), None);
    }
}
