//! Every millisecond value is at most a day (86 400 000 ms): more is a
//! compile error on the literal, naming the bound.

#[lifecycle_runtime::readiness(timeout_ms = 86400001, interval_ms = 86400000)]
fn database() -> bool {
    true
}

#[lifecycle_runtime::on_shutdown(timeout_ms = 18446744073709551615)]
async fn flush() {}

#[lifecycle_runtime::service_main(
    shutdown_timeout_ms = 86400001,
    drain_delay_ms = 86400000,
    connection_drain_ms = 86400001
)]
async fn main() {}
