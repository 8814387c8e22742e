//! Probe answers as text (kube-apiserver style) and JSON (MicroProfile
//! Health style). Pure functions of an evaluation, so they are tested
//! without a server.

use serde_json::{json, Map, Value};

use crate::checks::CheckResult;
use crate::probe::Endpoint;

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

fn detail_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `[+]NAME ok` or `[-]NAME failed: REASON`, with details after.
pub(crate) fn line(result: &CheckResult) -> String {
    let mut line = match result.health.reason() {
        None if result.health.is_up() => format!("[+]{} ok", result.name),
        reason => format!(
            "[-]{} failed: {}",
            result.name,
            reason.unwrap_or("no reason given")
        ),
    };
    let details = result.health.details();
    if !details.is_empty() {
        let shown: Vec<String> = details
            .iter()
            .map(|(key, value)| format!("{key}={}", detail_text(value)))
            .collect();
        line.push_str(&format!(" ({})", shown.join(", ")));
    }
    line
}

/// The plain answer: `ok`, or one line per failing check; with `verbose`,
/// every check and a closing verdict line.
pub(crate) fn text(evaluation: &Evaluation, verbose: bool) -> String {
    let passed = evaluation.passed();
    if !verbose {
        if passed {
            return "ok".to_owned();
        }
        return evaluation.failing().map(|r| line(r) + "\n").collect();
    }
    let mut out = String::new();
    for entry in &evaluation.entries {
        match entry {
            Entry::Ran(result) => out.push_str(&line(result)),
            Entry::Excluded(name) => out.push_str(&format!("[+]{name} excluded: ok")),
        }
        out.push('\n');
    }
    if !evaluation.unmatched_excludes.is_empty() {
        let names: Vec<String> = evaluation
            .unmatched_excludes
            .iter()
            .map(|n| format!("{n:?}"))
            .collect();
        out.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            names.join(",")
        ));
    }
    let verdict = if passed { "passed" } else { "failed" };
    out.push_str(&format!("{} check {verdict}\n", evaluation.endpoint));
    out
}

/// The JSON answer: `{"status":"UP"|"DOWN","checks":[{"name","status","data"}]}`.
pub(crate) fn json(evaluation: &Evaluation) -> String {
    let status = |up: bool| if up { "UP" } else { "DOWN" };
    let checks: Vec<Value> = evaluation
        .results()
        .map(|result| {
            let mut data = Map::new();
            for (key, value) in result.health.details() {
                data.insert(key.clone(), value.clone());
            }
            let millis = result.duration.as_secs_f64() * 1000.0;
            data.insert(
                "duration_ms".into(),
                json!((millis * 1000.0).round() / 1000.0),
            );
            data.insert("critical".into(), json!(result.critical));
            if let Some(reason) = result.health.reason() {
                data.insert("reason".into(), json!(reason));
            }
            json!({
                "name": result.name,
                "status": status(result.health.is_up()),
                "data": data,
            })
        })
        .collect();
    json!({ "status": status(evaluation.passed()), "checks": checks }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Health;
    use std::time::Duration;

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
            text(&eval, true),
            "[+]db ok (pool=3)\n[-]cache failed: refused\n[+]queue excluded: ok\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\n\
             readyz check passed\n"
        );
        assert_eq!(text(&eval, false), "ok");
    }

    #[test]
    fn plain_failure_lists_only_failing_critical_checks() {
        let eval = evaluation(vec![
            result("db", Health::down("timed out after 100 ms"), true),
            result("cache", Health::down("refused"), false),
        ]);
        assert!(!eval.passed());
        assert_eq!(text(&eval, false), "[-]db failed: timed out after 100 ms\n");
        let doc: Value = serde_json::from_str(&json(&eval)).unwrap();
        assert_eq!(doc["status"], "DOWN");
        assert_eq!(doc["checks"][0]["data"]["reason"], "timed out after 100 ms");
        assert_eq!(doc["checks"][1]["data"]["critical"], false);
        assert_eq!(doc["checks"][0]["data"]["duration_ms"], 1.5);
    }
}
