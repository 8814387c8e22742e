#[lifecycle_runtime::service_main(probe_protocol = "h2")]
async fn main() {}
