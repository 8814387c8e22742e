#[lifecycle_runtime::liveness(timeout = 100)]
fn alive() -> bool {
    true
}

#[lifecycle_runtime::on_shutdown(interval_ms = 100)]
fn flush() {}

fn main() {}
