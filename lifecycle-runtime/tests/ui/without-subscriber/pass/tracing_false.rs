#[lifecycle_runtime::service_main(tracing = false)]
async fn main() {}
