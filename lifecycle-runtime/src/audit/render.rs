//! The audit's output, made for CI logs: one line per finding on stdout,
//! `error|warning KIND/NAME container C: what is wrong; the binary needs
//! …; fix: …`, and a last line that sums them up.

use super::findings::{Finding, Severity};
use crate::text;

/// A finding, with the workload and the container it is about.
pub(crate) struct Located {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) container: String,
    pub(crate) finding: Finding,
}

/// The line of one finding: one line, whatever the manifest's text in it
/// holds (see [`one_line`]).
pub(crate) fn line(located: &Located) -> String {
    let Located {
        kind,
        name,
        container,
        finding,
    } = located;
    one_line(&format!(
        "{} {kind}/{name} container {container}: {}; the binary needs {}; fix: {}",
        finding.severity, finding.what, finding.needs, finding.fix
    ))
}

/// `text` on one line, whole: a name, path or annotation of the manifest
/// that holds a line break must not split a finding in two, nor an escape
/// sequence repaint the CI log. Unbounded: a finding is the user's to read
/// in full.
pub(crate) fn one_line(text: &str) -> String {
    text::one_line(text, usize::MAX).into_owned()
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The last line: `checked 2 containers running svc: 1 error, 0 warnings`.
pub(crate) fn summary(findings: &[Located], containers: usize, binary: &str) -> String {
    let errors = findings
        .iter()
        .filter(|f| f.finding.severity == Severity::Error)
        .count();
    format!(
        "checked {} running {binary}: {}, {}",
        count(containers, "container"),
        count(errors, "error"),
        count(findings.len() - errors, "warning"),
    )
}
