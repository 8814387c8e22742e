#[lifecycle_runtime::readiness]
fn database() -> String {
    String::new()
}

#[lifecycle_runtime::on_shutdown]
async fn flush() -> bool {
    true
}

fn main() {}
