#[lifecycle_runtime::readiness(name = "my database")]
fn database() -> bool {
    true
}

#[lifecycle_runtime::liveness]
fn runtime() -> bool {
    true
}

fn main() {}
