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

/// With the `grpc` feature (which the workspace's end-to-end crate turns
/// on), gRPC probes build. rustc names a type by its shortest unambiguous
/// path, and the health proto's `Health` trait makes the runtime's
/// `Health` read `lifecycle_runtime::Health`: the cases that list it have
/// their text for either build.
#[test]
#[cfg(feature = "grpc")]
fn ui_with_grpc() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/with-grpc/pass/*.rs");
    t.compile_fail("tests/ui/with-grpc/fail/*.rs");
}

/// Without the `grpc` feature (the default, and the no-default-features
/// run), `probe_protocol = "grpc"` is a compile error naming the feature;
/// and the text of the cases that list `Health` without its path.
#[test]
#[cfg(not(feature = "grpc"))]
fn ui_without_grpc() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/without-grpc/fail/*.rs");
}
