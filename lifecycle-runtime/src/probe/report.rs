//! Probe answers as text (kube-apiserver style) and JSON (MicroProfile
//! Health style), within the bounds of [`bounds`]. Pure functions of an
//! evaluation, so they are tested without a server.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::checks::CheckResult;
use crate::probe::bounds;
use crate::probe::endpoint::Endpoint;
use crate::probe::reasons::{Reasons, REASON_WITHHELD, VALUE_WITHHELD};
use crate::text::{cut, one_line, MAX_VALUE};

/// One line of an answer, in the order the checks are listed.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Ran(CheckResult),
    Excluded(String),
}

/// What a probe found.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    pub(crate) endpoint: Endpoint,
    pub(crate) entries: Vec<Entry>,
    /// `?exclude=` names that matched no check.
    pub(crate) unmatched_excludes: Vec<String>,
    /// A single-check path (`/readyz/NAME`): that check decides alone,
    /// critical or not.
    pub(crate) single: bool,
}

impl Evaluation {
    fn results(&self) -> impl Iterator<Item = &CheckResult> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Ran(result) => Some(result),
            Entry::Excluded(_) => None,
        })
    }

    /// The results that fail the endpoint.
    fn failing(&self) -> impl Iterator<Item = &CheckResult> {
        let single = self.single;
        self.results()
            .filter(move |r| !r.health.is_up() && (r.critical || single))
    }

    pub(crate) fn passed(&self) -> bool {
        self.failing().next().is_none()
    }
}

/// A reason, a detail's key or a detail's value as text: one line (its
/// control characters escaped, so that it cannot add lines that read as
/// other checks or a verdict), within [`MAX_VALUE`] bytes.
fn text_value(value: &str) -> Cow<'_, str> {
    one_line(value, MAX_VALUE)
}

fn detail_text(value: &Value) -> String {
    match value {
        Value::String(s) => text_value(s).into_owned(),
        other => text_value(&other.to_string()).into_owned(),
    }
}

/// `[+]NAME ok` or `[-]NAME failed: REASON`, with details after: for the
/// operator's eyes (`--lifecycle-preflight`), reasons shown.
pub(crate) fn line(result: &CheckResult) -> String {
    line_for(result, Reasons::Shown)
}

/// `[+]NAME ok` or `[-]NAME failed: REASON`, with details after; withheld,
/// `[-]NAME failed: reason withheld` and `key=withheld`.
fn line_for(result: &CheckResult, reasons: Reasons) -> String {
    let mut line = match result.health.reason() {
        None if result.health.is_up() => format!("[+]{} ok", result.name),
        _ if reasons == Reasons::Withheld => {
            format!("[-]{} failed: {REASON_WITHHELD}", result.name)
        }
        reason => format!(
            "[-]{} failed: {}",
            result.name,
            text_value(reason.unwrap_or("no reason given"))
        ),
    };
    let details = result.health.details();
    if !details.is_empty() {
        let shown: Vec<String> = details
            .iter()
            .map(|(key, value)| {
                let value = match reasons {
                    Reasons::Shown => detail_text(value),
                    Reasons::Withheld => VALUE_WITHHELD.to_owned(),
                };
                format!("{}={value}", text_value(key))
            })
            .collect();
        line.push_str(&format!(" ({})", shown.join(", ")));
    }
    line
}

/// The plain answer: `ok`, or one line per failing check; with `verbose`,
/// every check and a closing verdict line. At most 10 KiB: a longer answer
/// ends with `… N more checks` (before the verdict line, which stays last).
pub(crate) fn text(evaluation: &Evaluation, verbose: bool, reasons: Reasons) -> String {
    let passed = evaluation.passed();
    if !verbose {
        if passed {
            return "ok".to_owned();
        }
        let lines: Vec<String> = evaluation
            .failing()
            .map(|result| line_for(result, reasons))
            .collect();
        return bounds::fit_lines(&lines, &[]);
    }
    let lines: Vec<String> = evaluation
        .entries
        .iter()
        .map(|entry| match entry {
            Entry::Ran(result) => line_for(result, reasons),
            Entry::Excluded(name) => format!("[+]{name} excluded: ok"),
        })
        .collect();
    let mut tail = Vec::new();
    if !evaluation.unmatched_excludes.is_empty() {
        // The names come from the query: quoted (escaped), and cut.
        let names: Vec<String> = evaluation
            .unmatched_excludes
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        let warning = format!(
            "warn: some health checks cannot be excluded: no matches for {}",
            names.join(",")
        );
        tail.push(cut(&warning, MAX_VALUE).into_owned());
    }
    let verdict = if passed { "passed" } else { "failed" };
    tail.push(format!("{} check {verdict}", evaluation.endpoint));
    bounds::fit_lines(&lines, &tail)
}

/// The JSON answer: `{"status":"UP"|"DOWN","checks":[{"name","status","data"}]}`.
/// At most 10 KiB: whole checks are dropped from the end of a longer one,
/// and `"truncated": N` counts them. Withheld, every reason reads `reason
/// withheld` and every detail value `withheld`.
pub(crate) fn json(evaluation: &Evaluation, reasons: Reasons) -> String {
    let status = |up: bool| if up { "UP" } else { "DOWN" };
    let checks: Vec<String> = evaluation
        .results()
        .map(|result| {
            let mut data = Map::new();
            for (key, value) in result.health.details() {
                let value = match reasons {
                    Reasons::Shown => bounds::json_value(value).into_owned(),
                    Reasons::Withheld => json!(VALUE_WITHHELD),
                };
                data.insert(cut(key, MAX_VALUE).into_owned(), value);
            }
            let millis = result.duration.as_secs_f64() * 1000.0;
            data.insert(
                "duration_ms".into(),
                json!((millis * 1000.0).round() / 1000.0),
            );
            data.insert("critical".into(), json!(result.critical));
            if let Some(reason) = result.health.reason() {
                let reason = match reasons {
                    Reasons::Shown => cut(reason, MAX_VALUE),
                    Reasons::Withheld => REASON_WITHHELD.into(),
                };
                data.insert("reason".into(), json!(reason));
            }
            json!({
                "name": result.name,
                "status": status(result.health.is_up()),
                "data": data,
            })
            .to_string()
        })
        .collect();
    bounds::fit_json(status(evaluation.passed()), &checks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use std::time::Duration;
    use Reasons::{Shown, Withheld};

    fn result(name: &str, health: Health, critical: bool) -> Entry {
        Entry::Ran(CheckResult {
            name: name.into(),
            critical,
            health,
            duration: Duration::from_micros(1500),
        })
    }

    fn evaluation(entries: Vec<Entry>) -> Evaluation {
        Evaluation {
            endpoint: Endpoint::Readyz,
            entries,
            unmatched_excludes: vec!["nope".into()],
            single: false,
        }
    }

    #[test]
    fn verbose_lists_every_check_in_kube_style() {
        let eval = evaluation(vec![
            result("db", Health::up().with_detail("pool", 3), true),
            result("cache", Health::down("refused"), false),
            Entry::Excluded("queue".into()),
        ]);
        assert!(eval.passed());
        assert_eq!(
            text(&eval, true, Shown),
            "[+]db ok (pool=3)\n[-]cache failed: refused\n[+]queue excluded: ok\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\n\
             readyz check passed\n"
        );
        assert_eq!(text(&eval, false, Shown), "ok");
    }

    #[test]
    fn plain_failure_lists_only_failing_critical_checks() {
        let eval = evaluation(vec![
            result("db", Health::down("timed out after 100 ms"), true),
            result("cache", Health::down("refused"), false),
        ]);
        assert!(!eval.passed());
        assert_eq!(
            text(&eval, false, Shown),
            "[-]db failed: timed out after 100 ms\n"
        );
        let doc: Value = serde_json::from_str(&json(&eval, Shown)).unwrap();
        assert_eq!(doc["status"], "DOWN");
        assert_eq!(doc["checks"][0]["data"]["reason"], "timed out after 100 ms");
        assert_eq!(doc["checks"][1]["data"]["critical"], false);
        assert_eq!(doc["checks"][0]["data"]["duration_ms"], 1.5);
    }

    #[test]
    fn a_megabyte_reason_is_cut_to_512_bytes_in_text_and_json() {
        let megabyte = "é".repeat(1 << 19);
        let health = Health::down(megabyte.clone()).with_detail("dump", megabyte);
        let eval = evaluation(vec![result("db", health, true)]);
        let reason = text(&eval, false, Shown);
        let reason = reason
            .strip_prefix("[-]db failed: ")
            .and_then(|r| r.split(" (dump=").next())
            .unwrap();
        // 'é' is two bytes: 254 of them (508 bytes), then the 3-byte mark.
        assert_eq!(reason.len(), 511);
        assert!(reason.ends_with('…'));
        let doc: Value = serde_json::from_str(&json(&eval, Shown)).unwrap();
        for value in [
            &doc["checks"][0]["data"]["reason"],
            &doc["checks"][0]["data"]["dump"],
        ] {
            let value = value.as_str().unwrap();
            assert!(
                value.len() <= 512 && value.ends_with('…'),
                "{}",
                value.len()
            );
        }
    }

    #[test]
    fn a_reason_or_detail_with_newlines_forges_no_line() {
        let forged = "x\n[+]fake ok\nreadyz check passed";
        let health = Health::down(forged).with_detail("note\nkey", "a\r\n[+]fake2 ok");
        let eval = evaluation(vec![result("db", health, true)]);
        let verbose = text(&eval, true, Shown);
        assert_eq!(
            verbose,
            "[-]db failed: x\\n[+]fake ok\\nreadyz check passed \
             (note\\nkey=a\\r\\n[+]fake2 ok)\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\n\
             readyz check failed\n"
        );
        assert_eq!(text(&eval, false, Shown).lines().count(), 1);
        // JSON: the encoder's escaping, and nothing more.
        let doc: Value = serde_json::from_str(&json(&eval, Shown)).unwrap();
        assert_eq!(doc["checks"][0]["data"]["reason"], forged);
        assert_eq!(doc["checks"][0]["data"]["note\nkey"], "a\r\n[+]fake2 ok");
        assert_eq!(json(&eval, Shown).lines().count(), 1);
    }

    fn many_failing(count: usize) -> Evaluation {
        evaluation(
            (0..count)
                .map(|i| result(&format!("check{i}"), Health::down("r".repeat(400)), true))
                .collect(),
        )
    }

    #[test]
    fn answers_stay_within_10_kib_with_the_verdict_line_last() {
        let eval = many_failing(100);
        let verbose = text(&eval, true, Shown);
        assert!(verbose.len() <= 10 * 1024, "{}", verbose.len());
        let lines: Vec<&str> = verbose.lines().collect();
        assert_eq!(lines.last(), Some(&"readyz check failed"));
        assert!(lines[lines.len() - 2].starts_with("warn: "));
        let count = lines[lines.len() - 3];
        let kept = lines.len() - 3;
        assert_eq!(count, format!("… {} more checks", 100 - kept));
        let plain = text(&eval, false, Shown);
        assert!(plain.len() <= 10 * 1024);
        assert_eq!(
            plain.lines().last(),
            Some(format!("… {} more checks", 100 - (plain.lines().count() - 1)).as_str())
        );
        let doc = json(&eval, Shown);
        assert!(doc.len() <= 10 * 1024, "{}", doc.len());
        let doc: Value = serde_json::from_str(&doc).expect("valid JSON");
        let kept = doc["checks"].as_array().unwrap().len();
        assert_eq!(doc["truncated"], 100 - kept);
        assert_eq!(doc["status"], "DOWN");
        // A few checks: whole answers.
        let few = many_failing(3);
        assert_eq!(text(&few, true, Shown).lines().count(), 5);
        assert!(!json(&few, Shown).contains("truncated"));
    }

    #[test]
    fn withheld_every_reason_and_detail_value_reads_withheld() {
        let eval = evaluation(vec![
            result(
                "db",
                Health::down("postgres://admin:hunter2@db.internal:5432")
                    .with_detail("host", "db.internal"),
                true,
            ),
            result("cache", Health::up().with_detail("nodes", 3), true),
            result("quiet", Health::down(""), false),
        ]);
        assert_eq!(
            text(&eval, true, Withheld),
            "[-]db failed: reason withheld (host=withheld)\n\
             [+]cache ok (nodes=withheld)\n\
             [-]quiet failed: reason withheld\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\n\
             readyz check failed\n"
        );
        assert_eq!(
            text(&eval, false, Withheld),
            "[-]db failed: reason withheld (host=withheld)\n"
        );
        let doc = json(&eval, Withheld);
        assert!(
            !doc.contains("hunter2") && !doc.contains("db.internal"),
            "{doc}"
        );
        let doc: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(doc["checks"][0]["data"]["reason"], "reason withheld");
        assert_eq!(doc["checks"][0]["data"]["host"], "withheld");
        assert_eq!(doc["checks"][1]["data"]["nodes"], "withheld");
        assert!(
            doc["checks"][1]["data"].get("reason").is_none(),
            "up: no reason"
        );
        assert_eq!(doc["checks"][1]["data"]["critical"], true);
        // Shown, the same answers carry them.
        assert!(text(&eval, true, Shown).contains("hunter2"));
        assert!(json(&eval, Shown).contains("hunter2"));
    }
}
