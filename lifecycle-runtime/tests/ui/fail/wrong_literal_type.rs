#[lifecycle_runtime::readiness(timeout_ms = "100", critical = "yes", name = db)]
fn database() -> bool {
    true
}

#[lifecycle_runtime::on_startup(order = 1.5)]
fn open() {}

fn main() {}
