#[lifecycle_runtime::service_main(reasons = "bogus")]
async fn main() {}
