#[lifecycle_runtime::service_main]
fn main() {}
