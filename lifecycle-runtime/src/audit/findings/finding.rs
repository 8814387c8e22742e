//! A finding, and the one function that formats its parts.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    /// What is wrong, starting with its stable words.
    pub(crate) what: String,
    /// What the binary needs instead.
    pub(crate) needs: String,
    /// How to fix it.
    pub(crate) fix: String,
}

// The parts are taken as `format_args!`, formatted here: one formatting
// call each in this one function, rather than a `format!` and its
// `String` (and the unwinding that drops it) at each of the findings.
pub(super) fn error(
    what: fmt::Arguments<'_>,
    needs: fmt::Arguments<'_>,
    fix: fmt::Arguments<'_>,
) -> Finding {
    finding(Severity::Error, what, needs, fix)
}

pub(super) fn warning(
    what: fmt::Arguments<'_>,
    needs: fmt::Arguments<'_>,
    fix: fmt::Arguments<'_>,
) -> Finding {
    finding(Severity::Warning, what, needs, fix)
}

fn finding(
    severity: Severity,
    what: fmt::Arguments<'_>,
    needs: fmt::Arguments<'_>,
    fix: fmt::Arguments<'_>,
) -> Finding {
    Finding {
        severity,
        what: fmt::format(what),
        needs: fmt::format(needs),
        fix: fmt::format(fix),
    }
}
