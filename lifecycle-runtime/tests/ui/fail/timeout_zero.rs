#[lifecycle_runtime::readiness(timeout_ms = 0)]
fn database() -> bool {
    true
}

fn main() {}
