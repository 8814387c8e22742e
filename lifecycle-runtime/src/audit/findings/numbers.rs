//! The numbers of a manifest as the API server takes them: a probe's
//! timing fields left out, null or 0 take Kubernetes' defaults
//! (`SetDefaults_Probe`); the pod's `terminationGracePeriodSeconds` and a
//! probe's own are pointers, where 0 is 0. A negative number, a fraction
//! or a string is refused by the API server: an error, and the checks that
//! need the number skip it.

use serde_json::Value;

use super::finding::{error, Finding};
use crate::audit::read::present;
use crate::manifest::{
    DEFAULT_FAILURE_THRESHOLD, DEFAULT_PERIOD_SECONDS, DEFAULT_SUCCESS_THRESHOLD,
    DEFAULT_TIMEOUT_SECONDS,
};

/// A probe's numbers, each with what the API server takes for it when it
/// is left out or 0 (`None`: 0 is 0, and the default).
const PROBE_NUMBERS: [(&str, Option<u64>); 5] = [
    ("initialDelaySeconds", None),
    ("timeoutSeconds", Some(DEFAULT_TIMEOUT_SECONDS)),
    ("periodSeconds", Some(DEFAULT_PERIOD_SECONDS)),
    ("successThreshold", Some(DEFAULT_SUCCESS_THRESHOLD)),
    ("failureThreshold", Some(DEFAULT_FAILURE_THRESHOLD)),
];

/// `key` of `object`: `Ok(None)` when left out or null, `Ok(Some(n))` for
/// a whole number of 0 or more, else `Err` with the value as written.
pub(super) fn whole_number(object: &Value, key: &str) -> Result<Option<u64>, String> {
    match present(object, key) {
        None => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| value.to_string()),
    }
}

/// A probe's number `key` (one of [`PROBE_NUMBERS`]) as the kubelet uses
/// it; `None` when the API server would refuse it (see [`probe_numbers`]).
pub(super) fn probe_number(probe: &Value, key: &str) -> Option<u64> {
    let zero_is = PROBE_NUMBERS
        .iter()
        .find(|(number, _)| *number == key)
        .and_then(|(_, default)| *default);
    match whole_number(probe, key).ok()? {
        None | Some(0) => Some(zero_is.unwrap_or(0)),
        Some(given) => Some(given),
    }
}

/// An error for each number of `probe` (`key`) the API server refuses,
/// its own `terminationGracePeriodSeconds` included.
pub(super) fn probe_numbers(key: &str, probe: &Value, findings: &mut Vec<Finding>) {
    for (number, default) in PROBE_NUMBERS {
        if let Err(written) = whole_number(probe, number) {
            let needs = match default {
                Some(default) => format!(
                    "{number} a whole number (0 or none takes Kubernetes' default, {default})"
                ),
                None => format!("{number} a whole number (none is 0)"),
            };
            findings.push(not_a_number(
                &format!("{key} {number}"),
                &written,
                needs,
                &format!("{key}.{number}"),
            ));
        }
    }
    let grace = "terminationGracePeriodSeconds";
    if let Err(written) = whole_number(probe, grace) {
        findings.push(not_a_number(
            &format!("{key} {grace}"),
            &written,
            format!("{grace} a whole number of seconds (none takes the pod's)"),
            &format!("{key}.{grace}"),
        ));
    }
}

/// The error for a number the API server refuses: `what` names it,
/// `field` is its path for the fix.
pub(super) fn not_a_number(what: &str, written: &str, needs: String, field: &str) -> Finding {
    error(
        format_args!(
            "{what} {written} is not a whole number of 0 or more, which the API server refuses"
        ),
        format_args!("{needs}"),
        format_args!("set {field} to a whole number, or remove it"),
    )
}
