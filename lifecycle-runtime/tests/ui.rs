//! Compile-time errors for every misuse of the attributes, each pointing at
//! the offending token; their text is kept in the `.stderr` files beside
//! them (`TRYBUILD=overwrite cargo test --test ui` refreshes them).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
