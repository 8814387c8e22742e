#[lifecycle_runtime::service_main(tracing = true)]
async fn main() {}
