//! Documents, passages and passage splitting.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::sentences::split_sentences;

/// A source document as read from a corpus file.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Stable id (JSONL id field, or relative path for text files).
    pub id: String,
    /// Title, possibly empty.
    pub title: String,
    /// Full text; passage offsets point into it.
    pub text: String,
    /// Sentence boundaries given by the source (byte ranges into `text`), when the
    /// text came as an array of sentences; otherwise they are computed.
    pub sentences: Option<Vec<Range<usize>>>,
}

impl Document {
    /// A document from an array of sentences, joined by single spaces, keeping each
    /// sentence's position so evidence sentence indices map to exact text.
    pub fn from_sentences(id: String, title: String, sentences: &[String]) -> Self {
        let mut text = String::new();
        let mut ranges = Vec::with_capacity(sentences.len());
        for s in sentences {
            if !text.is_empty() {
                text.push(' ');
            }
            let start = text.len();
            text.push_str(s);
            ranges.push(start..text.len());
        }
        Self { id, title, text, sentences: Some(ranges) }
    }

    /// Sentence byte ranges: the given ones, or computed with [`split_sentences`].
    pub fn sentence_ranges(&self) -> Vec<Range<usize>> {
        self.sentences.clone().unwrap_or_else(|| split_sentences(&self.text))
    }
}

/// How documents are cut into passages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassageConfig {
    /// Maximum passage length in characters. A sentence longer than this is cut into
    /// pieces of at most this length, at the last white space before the limit where
    /// there is one (text with no sentence boundaries never makes a huge passage).
    pub max_chars: usize,
    /// Sentences repeated at the start of the next passage.
    pub overlap_sentences: usize,
}

impl Default for PassageConfig {
    fn default() -> Self {
        Self { max_chars: 1000, overlap_sentences: 1 }
    }
}

/// A passage: a run of whole sentences of one document, with exact offsets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// The document's id.
    pub doc_id: String,
    /// `DOC_ID#N`, stable while the document and passage settings are unchanged.
    pub passage_id: String,
    /// The document's title.
    pub title: String,
    /// The passage text, exactly `document.text[start..end]` in characters.
    pub text: String,
    /// Start offset in characters (Unicode scalar values) into the document text.
    pub start: usize,
    /// End offset (exclusive) in characters.
    pub end: usize,
}

impl Passage {
    /// The passage as a judge reads it: its document's title, then its text.
    pub fn evidence_text(&self) -> String {
        format!("{}: {}", self.title, self.text)
    }
}

/// Cut `doc` into passages of whole sentences (a sentence longer than the limit is cut).
pub fn split_passages(doc: &Document, config: &PassageConfig) -> Vec<Passage> {
    let sentences = cut_long(&doc.text, &doc.sentence_ranges(), config.max_chars.max(1));
    let byte_ranges = group_sentences(&doc.text, &sentences, config);
    // Passages start and end in order, so character offsets are counted in one pass.
    let mut starts = CharCursor::default();
    let mut ends = CharCursor::default();
    byte_ranges
        .into_iter()
        .enumerate()
        .map(|(n, r)| Passage {
            doc_id: doc.id.clone(),
            passage_id: format!("{}#{n}", doc.id),
            title: doc.title.clone(),
            text: doc.text[r.clone()].to_string(),
            start: starts.advance(&doc.text, r.start),
            end: ends.advance(&doc.text, r.end),
        })
        .collect()
}

/// Counts characters up to a byte offset, resuming from the last offset asked for, so a
/// sequence of non-decreasing offsets costs one pass over the text (counting from the
/// start each time was quadratic in a large document).
#[derive(Default)]
struct CharCursor {
    byte: usize,
    chars: usize,
}

impl CharCursor {
    fn advance(&mut self, text: &str, to: usize) -> usize {
        if to < self.byte {
            *self = CharCursor::default();
        }
        self.chars += text[self.byte..to].chars().count();
        self.byte = to;
        self.chars
    }
}

/// `sentences` with every range longer than `max_chars` characters cut into pieces of
/// at most `max_chars`, each ending at the last white space before the limit when there
/// is one (the white space goes with the next piece's leading trim).
fn cut_long(text: &str, sentences: &[Range<usize>], max_chars: usize) -> Vec<Range<usize>> {
    let mut out = Vec::with_capacity(sentences.len());
    for r in sentences {
        let mut start = r.start;
        loop {
            let rest = &text[start..r.end];
            // The byte offset just past `max_chars` characters, if the rest is longer.
            let Some((limit, _)) = rest.char_indices().nth(max_chars) else {
                out.push(start..r.end);
                break;
            };
            // The last white space at or before the limit (a piece may end right there).
            let at_limit = rest[limit..].chars().next().map_or(0, char::len_utf8);
            let cut = rest[..limit + at_limit].rfind(char::is_whitespace).filter(|at| *at > 0).unwrap_or(limit);
            out.push(start..start + cut);
            let skipped = rest[cut..].len() - rest[cut..].trim_start().len();
            start += cut + skipped;
            if start >= r.end {
                break;
            }
        }
    }
    out
}

/// Greedy packing of sentences into byte ranges of at most `max_chars` characters.
fn group_sentences(text: &str, sentences: &[Range<usize>], config: &PassageConfig) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut first = 0;
    while first < sentences.len() {
        let mut last = first;
        let mut len = text[sentences[first].clone()].chars().count();
        while last + 1 < sentences.len() {
            // What adding the next sentence costs: the gap before it and itself.
            let next = &text[sentences[last].end..sentences[last + 1].end];
            let grown = len + next.chars().count();
            if grown > config.max_chars {
                break;
            }
            len = grown;
            last += 1;
        }
        out.push(sentences[first].start..sentences[last].end);
        if last + 1 >= sentences.len() {
            break;
        }
        // Step back by the overlap, but always move forward.
        first = (last + 1).saturating_sub(config.overlap_sentences).max(first + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        Document { id: "d".into(), title: String::new(), text: text.into(), sentences: None }
    }

    #[test]
    fn passages_hold_whole_sentences_with_exact_char_offsets() {
        let d = doc("Ünï one here. Two is here. Three is here. Four is here.");
        let ps = split_passages(&d, &PassageConfig { max_chars: 30, overlap_sentences: 1 });
        let chars: Vec<char> = d.text.chars().collect();
        for p in &ps {
            let slice: String = chars[p.start..p.end].iter().collect();
            assert_eq!(slice, p.text);
            assert!(p.text.ends_with('.'));
        }
        assert_eq!(ps[0].text, "Ünï one here. Two is here.");
        assert_eq!(ps[1].text, "Two is here. Three is here.", "one sentence of overlap");
        assert_eq!(ps.last().map(|p| p.passage_id.as_str()), Some("d#2"));
    }

    #[test]
    fn long_sentences_are_cut_at_white_space_and_zero_overlap() {
        let d = doc("A very long sentence that exceeds the limit by itself. Short.");
        let ps = split_passages(&d, &PassageConfig { max_chars: 20, overlap_sentences: 0 });
        assert_eq!(
            ps.iter().map(|p| p.text.as_str()).collect::<Vec<_>>(),
            vec!["A very long sentence", "that exceeds the", "limit by itself.", "Short."]
        );
        assert!(split_passages(&doc(""), &PassageConfig::default()).is_empty());
    }

    #[test]
    fn text_without_boundaries_never_makes_a_passage_over_the_limit() {
        // Regression: a 50 MB document with no sentence boundary came back as one passage.
        let words: String = (0..5000).map(|i| format!("wörd{i} ")).collect();
        let unbroken = "x".repeat(2500);
        for text in [words.as_str(), unbroken.as_str()] {
            let d = doc(text);
            let ps = split_passages(&d, &PassageConfig { max_chars: 100, overlap_sentences: 1 });
            let chars: Vec<char> = d.text.chars().collect();
            assert!(ps.len() > 10);
            for p in &ps {
                assert!(p.text.chars().count() <= 100, "{}", p.text.chars().count());
                assert_eq!(chars[p.start..p.end].iter().collect::<String>(), p.text);
            }
            // Each passage is one piece here; nothing but white space is left out between them.
            let joined: String = ps.iter().flat_map(|p| p.text.chars()).filter(|c| !c.is_whitespace()).collect();
            assert_eq!(joined, d.text.chars().filter(|c| !c.is_whitespace()).collect::<String>());
        }
    }

    #[test]
    fn sentence_arrays_keep_their_boundaries() {
        let d = Document::from_sentences("7".into(), "T".into(), &["First one.".into(), "e.g. second".into()]);
        assert_eq!(d.text, "First one. e.g. second");
        assert_eq!(d.sentence_ranges(), vec![0..10, 11..22]);
    }
}
