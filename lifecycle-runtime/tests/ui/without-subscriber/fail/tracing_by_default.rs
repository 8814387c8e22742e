#[lifecycle_runtime::service_main]
async fn main() {}
