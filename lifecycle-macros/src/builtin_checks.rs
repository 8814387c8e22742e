// The names of the runtime's built-in checks, which a user's check may not
// take. A proc-macro crate cannot take constants from the runtime, so this
// is a copy of `BUILTIN_CHECK_NAMES` in the runtime's `probe::endpoint`;
// the workspace's tests `include!` this file and compare the two. Data
// only: one item, no `use`.

/// Names of the runtime's own checks; a user check may not take them.
pub(crate) const BUILTIN_CHECK_NAMES: [&str; 3] = ["lifecycle", "runtime", "tasks"];
