//! Text bounded for a line: a value (a check's reason, a detail, a hook's
//! failure) is one line of at most [`MAX_VALUE`] bytes, the cut mark
//! included. A check that returns a megabyte of error text must not flood
//! an answer or the log, and one whose reason holds a newline must not add
//! lines that read as passing checks.

use std::borrow::Cow;

/// The most bytes of a reason, a detail's key or a detail's value.
pub(crate) const MAX_VALUE: usize = 512;

/// Ends a value that was cut.
pub(crate) const CUT_MARK: &str = "…";

/// `value` in at most `max` bytes: as it is when it fits, else cut on a
/// character boundary and ended with [`CUT_MARK`], the mark counted in
/// `max`.
pub(crate) fn cut(value: &str, max: usize) -> Cow<'_, str> {
    if value.len() <= max {
        return Cow::Borrowed(value);
    }
    let mut end = max.saturating_sub(CUT_MARK.len());
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{CUT_MARK}", &value[..end]))
}

/// Whether `c` would end or disturb a line of text: a control character
/// (C0, DEL and C1: `\n`, `\r`, ESC, NEL, …) or a Unicode line or paragraph
/// separator.
fn breaks_lines(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Appends `c` as a text answer writes it: `\n`, `\r` and `\t` as a
/// backslash and a letter, any other character of [`breaks_lines`] as
/// Rust writes it (`\u{1b}`), anything else as it is. A backslash is left
/// as it is: what matters is that a value stays on its line.
fn push_escaped(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if breaks_lines(c) => out.extend(c.escape_unicode()),
        c => out.push(c),
    }
}

/// `value` as one line of a text answer, in at most `max` bytes: its
/// control characters escaped ([`push_escaped`]), then cut like [`cut`],
/// never inside an escape.
///
/// Only the head of `value` is read: a character takes at least its own
/// bytes in the line, so past the first `max` bytes (and the character
/// they end in) nothing can show, and a megabyte of reason costs no more
/// than its first kilobyte.
pub(crate) fn one_line(value: &str, max: usize) -> Cow<'_, str> {
    let mut end = value.len().min(max.saturating_add(4));
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let head = &value[..end];
    if !head.chars().any(breaks_lines) {
        return cut(value, max);
    }
    let budget = max.saturating_sub(CUT_MARK.len());
    let mut out = String::with_capacity(head.len().min(max) + 8);
    // The end of the last escape or character that fits with the mark.
    let mut cut_at = 0;
    for c in head.chars() {
        push_escaped(c, &mut out);
        if out.len() > max {
            out.truncate(cut_at);
            out.push_str(CUT_MARK);
            return Cow::Owned(out);
        }
        if out.len() <= budget {
            cut_at = out.len();
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_reads_the_head_only_and_says_the_same() {
        // What lies past the first `max` bytes never shows: a control
        // character there changes nothing, and the line is cut all the
        // same.
        let plain = "a".repeat(MAX_VALUE + 1);
        let late_newline = format!("{plain}\n[+]fake ok");
        assert_eq!(
            one_line(&late_newline, MAX_VALUE),
            one_line(&plain, MAX_VALUE)
        );
        assert!(one_line(&late_newline, MAX_VALUE).ends_with(CUT_MARK));
        // Characters of 1 to 4 bytes across the limit, and escapes.
        for filler in ["a", "é", "€", "😀", "\n", "a\u{1b}"] {
            for extra in 0..8 {
                let value = filler.repeat(MAX_VALUE / filler.len() + extra);
                let line = one_line(&value, MAX_VALUE);
                assert!(line.len() <= MAX_VALUE, "{filler:?} {extra}");
                assert_eq!(line.lines().count(), 1);
                let whole: String = value
                    .chars()
                    .map(|c| {
                        let mut out = String::new();
                        push_escaped(c, &mut out);
                        out
                    })
                    .collect();
                if whole.len() <= MAX_VALUE {
                    assert_eq!(line, whole, "{filler:?} {extra}");
                } else {
                    let kept = line.strip_suffix(CUT_MARK).expect("cut");
                    assert!(whole.starts_with(kept), "{filler:?} {extra}");
                    // At most one escape (6 bytes) short of the budget.
                    assert!(
                        kept.len() + 6 >= MAX_VALUE - CUT_MARK.len(),
                        "{filler:?} {extra}: {} bytes kept",
                        kept.len()
                    );
                }
            }
        }
    }

    #[test]
    fn a_value_that_fits_is_left_as_it_is() {
        let exactly = "a".repeat(MAX_VALUE);
        assert!(matches!(cut(&exactly, MAX_VALUE), Cow::Borrowed(_)));
        assert_eq!(cut("", MAX_VALUE), "");
    }

    #[test]
    fn a_longer_value_is_cut_to_the_bound_with_the_mark_included() {
        let long = "a".repeat(MAX_VALUE + 1);
        let cut = cut(&long, MAX_VALUE);
        assert_eq!(cut.len(), MAX_VALUE);
        assert!(cut.ends_with(CUT_MARK));
        assert_eq!(&cut[..MAX_VALUE - CUT_MARK.len()], &long[..509]);
        let megabyte = "x".repeat(1 << 20);
        assert_eq!(super::cut(&megabyte, MAX_VALUE).len(), MAX_VALUE);
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // Two-, three- and four-byte characters, at every offset against
        // the bound.
        for filler in ["é", "€", "🦀"] {
            for offset in 0..4 {
                let value = format!("{}{}", "a".repeat(offset), filler.repeat(MAX_VALUE));
                let cut = cut(&value, MAX_VALUE);
                assert!(
                    cut.len() <= MAX_VALUE,
                    "{filler} at {offset}: {}",
                    cut.len()
                );
                assert!(cut.len() > MAX_VALUE - CUT_MARK.len() - filler.len());
                assert!(cut.ends_with(CUT_MARK));
                // A `str` is valid UTF-8: the cut is on a boundary.
                let kept = cut.strip_suffix(CUT_MARK).unwrap();
                assert!(value.starts_with(kept));
            }
        }
    }

    #[test]
    fn control_characters_are_escaped_so_a_value_stays_on_its_line() {
        let forged = "x\n[+]fake ok\nreadyz check passed";
        assert_eq!(
            one_line(forged, MAX_VALUE),
            "x\\n[+]fake ok\\nreadyz check passed"
        );
        assert_eq!(one_line("a\r\tb", MAX_VALUE), "a\\r\\tb");
        // ESC, DEL, NUL, NEL (C1) and the Unicode line separator.
        assert_eq!(
            one_line("\u{1b}[31m\u{7f}\0\u{85}\u{2028}", MAX_VALUE),
            "\\u{1b}[31m\\u{7f}\\u{0}\\u{85}\\u{2028}"
        );
        // Printable text, non-ASCII and backslashes included, is as it was.
        let plain = "é € 🦀 C:\\dir \"quoted\"";
        assert!(matches!(one_line(plain, MAX_VALUE), Cow::Borrowed(_)));
        for text in [forged, "\r\n\u{b}\u{c}\u{1c}\u{1d}\u{1e}\u{85}\u{2029}"] {
            assert_eq!(one_line(text, MAX_VALUE).lines().count(), 1, "{text:?}");
        }
    }

    #[test]
    fn an_escaped_value_is_cut_to_the_bound_never_inside_an_escape() {
        // Exactly 512 bytes once escaped: kept whole.
        let exactly = format!("{}\n", "a".repeat(MAX_VALUE - 2));
        assert_eq!(one_line(&exactly, MAX_VALUE).len(), MAX_VALUE);
        assert!(!one_line(&exactly, MAX_VALUE).ends_with(CUT_MARK));
        // One more byte: cut, and "\n" does not fit before the mark.
        let over = format!("{}\n", "a".repeat(MAX_VALUE - 1));
        let cut = one_line(&over, MAX_VALUE);
        assert_eq!(
            cut,
            format!("{}{CUT_MARK}", "a".repeat(MAX_VALUE - CUT_MARK.len()))
        );
        let escapes = "\u{1b}".repeat(MAX_VALUE);
        let cut = one_line(&escapes, MAX_VALUE);
        assert!(cut.len() <= MAX_VALUE);
        let kept = cut.strip_suffix(CUT_MARK).unwrap();
        assert_eq!(kept, "\\u{1b}".repeat(kept.len() / 6), "whole escapes only");
        // Multi-byte characters around an escape.
        let mixed = format!("{}\n{}", "é".repeat(250), "€".repeat(400));
        let cut = one_line(&mixed, MAX_VALUE);
        assert!(cut.len() <= MAX_VALUE && cut.ends_with(CUT_MARK));
        assert!(cut.starts_with(&format!("{}\\n€", "é".repeat(250))));
    }
}
