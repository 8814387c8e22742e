//! Compile-time errors for every misuse of the attributes, each pointing at
//! the offending token; their text is kept in the `.stderr` files beside
//! them (`TRYBUILD=overwrite cargo test --test ui` refreshes them).

#[test]
#[cfg(feature = "tracing-subscriber")]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}

/// `cargo test -p lifecycle-runtime --no-default-features --test ui`:
/// without the default subscriber, `tracing = true` is a compile error
/// naming the feature, and `tracing = false` builds.
#[test]
#[cfg(not(feature = "tracing-subscriber"))]
fn ui_without_the_default_subscriber() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/without-subscriber/pass/*.rs");
    t.compile_fail("tests/ui/without-subscriber/fail/*.rs");
}
