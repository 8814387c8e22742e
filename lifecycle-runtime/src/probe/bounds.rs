//! The bounds of a probe's answer: a reason or a detail value is one line
//! of at most [`MAX_VALUE`] bytes ([`crate::text`]), and a whole answer at
//! most [`MAX_ANSWER`] bytes, what the kubelet reads of it. A check that
//! returns a megabyte of error text must not push the verdict past what
//! the kubelet sees.

use std::borrow::Cow;

use serde_json::Value;

use crate::text::{cut, CUT_MARK, MAX_VALUE};

/// The most bytes of an answer's body: the kubelet reads no more.
pub(crate) const MAX_ANSWER: usize = 10 * 1024;

/// A detail's value for a JSON answer, within [`MAX_VALUE`] bytes: a
/// string is cut; a number, a list or an object whose JSON is longer
/// becomes that JSON as a cut string.
pub(crate) fn json_value(value: &Value) -> Cow<'_, Value> {
    match value {
        Value::String(text) => match cut(text, MAX_VALUE) {
            Cow::Borrowed(_) => Cow::Borrowed(value),
            Cow::Owned(cut) => Cow::Owned(Value::String(cut)),
        },
        Value::Null | Value::Bool(_) | Value::Number(_) => Cow::Borrowed(value),
        Value::Array(_) | Value::Object(_) => {
            let text = value.to_string();
            match cut(&text, MAX_VALUE) {
                Cow::Borrowed(_) => Cow::Borrowed(value),
                Cow::Owned(cut) => Cow::Owned(Value::String(cut)),
            }
        }
    }
}

/// `… N more checks`: the line that ends a text answer cut short.
pub(crate) fn more_checks_line(left_out: usize) -> String {
    format!("{CUT_MARK} {left_out} more checks")
}

/// A text answer of `lines` then `tail` (the closing lines, kept
/// whatever happens), each ended by a newline, in at most [`MAX_ANSWER`]
/// bytes: when it would be longer, the first `lines` that fit are kept,
/// then a [`more_checks_line`] counting the others, then `tail`. Each line
/// of `tail` must be short (a verdict, a warning cut to [`MAX_VALUE`]).
pub(crate) fn fit_lines(lines: &[String], tail: &[String]) -> String {
    let size = |lines: &[String]| lines.iter().map(|l| l.len() + 1).sum::<usize>();
    let whole = size(lines) + size(tail);
    let mut out = String::with_capacity(whole.min(MAX_ANSWER));
    let mut kept = lines.len();
    if whole > MAX_ANSWER {
        // Room for the longest `… N more checks` there can be.
        let reserved = size(tail) + more_checks_line(lines.len()).len() + 1;
        let room = MAX_ANSWER.saturating_sub(reserved);
        let mut used = 0;
        kept = lines
            .iter()
            .take_while(|line| {
                used += line.len() + 1;
                used <= room
            })
            .count();
    }
    for line in &lines[..kept] {
        out.push_str(line);
        out.push('\n');
    }
    if kept < lines.len() {
        out.push_str(&more_checks_line(lines.len() - kept));
        out.push('\n');
    }
    for line in tail {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// A JSON document `{"status":…,"checks":[…]}` in at most [`MAX_ANSWER`]
/// bytes: when it would be longer, whole checks are dropped from the end
/// and `"truncated": N` says how many. `checks` are the serialized checks.
pub(crate) fn fit_json(status: &str, checks: &[String]) -> String {
    let head = format!("{{\"status\":{},\"checks\":[", Value::from(status));
    let end = "]}";
    // Each check but the first is preceded by a comma.
    let size = |checks: &[String]| {
        checks.iter().map(String::len).sum::<usize>() + checks.len().saturating_sub(1)
    };
    let mut kept = checks.len();
    if head.len() + size(checks) + end.len() > MAX_ANSWER {
        let truncated = format!("],\"truncated\":{}}}", checks.len());
        let room = MAX_ANSWER.saturating_sub(head.len() + truncated.len());
        kept = (0..=checks.len())
            .take_while(|n| size(&checks[..*n]) <= room)
            .last()
            .unwrap_or(0);
    }
    let mut out = head;
    out.push_str(&checks[..kept].join(","));
    if kept < checks.len() {
        out.push_str(&format!("],\"truncated\":{}}}", checks.len() - kept));
    } else {
        out.push_str(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_bounded_whatever_their_type() {
        let long = Value::String("é".repeat(MAX_VALUE));
        let Value::String(cut) = json_value(&long).into_owned() else {
            panic!("still a string");
        };
        assert!(cut.len() <= MAX_VALUE && cut.ends_with(CUT_MARK));
        let list = Value::from(vec![123_456_789; 100]);
        let Value::String(text) = json_value(&list).into_owned() else {
            panic!("a long list becomes its cut JSON");
        };
        assert!(text.len() <= MAX_VALUE && text.starts_with("[123456789,"));
        let small = serde_json::json!({"a": [1, 2]});
        assert_eq!(json_value(&small).into_owned(), small);
        assert_eq!(json_value(&Value::from(3)).into_owned(), Value::from(3));
    }

    fn lines(count: usize, length: usize) -> Vec<String> {
        (0..count)
            .map(|i| format!("[-]check{i:03} failed: {}", "r".repeat(length)))
            .collect()
    }

    #[test]
    fn a_text_answer_that_fits_is_whole() {
        let lines = lines(3, 10);
        let text = fit_lines(&lines, &["readyz check failed".into()]);
        assert_eq!(text.lines().count(), 4);
        assert!(!text.contains(CUT_MARK));
    }

    #[test]
    fn a_long_text_answer_ends_with_the_count_left_out_then_its_verdict() {
        let lines = lines(100, 500);
        let tail = [
            "warn: some health checks cannot be excluded: no matches for \"x\"".to_owned(),
            "readyz check failed".to_owned(),
        ];
        let text = fit_lines(&lines, &tail);
        assert!(text.len() <= MAX_ANSWER, "{}", text.len());
        let all: Vec<&str> = text.lines().collect();
        assert_eq!(all.last(), Some(&"readyz check failed"), "verdict last");
        assert_eq!(all[all.len() - 2], tail[0]);
        let kept = all.len() - 3;
        assert_eq!(all[kept], format!("… {} more checks", 100 - kept));
        assert_eq!(&all[..kept], &lines[..kept], "a prefix, whole lines");
        // As many as fit: one more would not (room was kept for the
        // longest count line, a digit or two longer than this one).
        assert!(text.len() + lines[kept].len() + 1 > MAX_ANSWER - 3);
        // Without a tail (a plain failing answer): lines, then the count.
        let plain = fit_lines(&lines, &[]);
        assert!(plain.len() <= MAX_ANSWER);
        assert!(plain.lines().last().unwrap().ends_with(" more checks"));
    }

    #[test]
    fn a_single_line_too_long_for_the_answer_is_counted_not_cut() {
        let lines = vec!["x".repeat(2 * MAX_ANSWER), "[+]small ok".to_owned()];
        let text = fit_lines(&lines, &["livez check failed".into()]);
        assert_eq!(text, "… 2 more checks\nlivez check failed\n");
    }

    #[test]
    fn a_long_json_answer_stays_valid_and_says_how_many_checks_it_dropped() {
        let checks: Vec<String> = (0..100)
            .map(|i| {
                serde_json::json!({"name": format!("c{i}"), "status": "DOWN",
                    "data": {"reason": "é".repeat(250)}})
                .to_string()
            })
            .collect();
        let text = fit_json("DOWN", &checks);
        assert!(text.len() <= MAX_ANSWER, "{}", text.len());
        let doc: Value = serde_json::from_str(&text).expect("valid JSON");
        let kept = doc["checks"].as_array().unwrap().len();
        assert!(kept > 0 && kept < 100);
        assert_eq!(doc["truncated"], 100 - kept);
        assert_eq!(doc["status"], "DOWN");
        assert_eq!(doc["checks"][kept - 1]["name"], format!("c{}", kept - 1));
        // One more would not have fit.
        assert!(text.len() + checks[kept].len() + 1 > MAX_ANSWER - 3);

        let small = fit_json("UP", &checks[..2]);
        let doc: Value = serde_json::from_str(&small).unwrap();
        assert_eq!(doc["checks"].as_array().unwrap().len(), 2);
        assert!(
            doc.get("truncated").is_none(),
            "only when checks were dropped"
        );
        let none: Value = serde_json::from_str(&fit_json("UP", &[])).unwrap();
        assert_eq!(none, serde_json::json!({"status": "UP", "checks": []}));
    }
}
