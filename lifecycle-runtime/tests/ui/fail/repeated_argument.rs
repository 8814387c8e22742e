#[lifecycle_runtime::readiness(timeout_ms = 100, timeout_ms = 200)]
fn database() -> bool {
    true
}

fn main() {}
