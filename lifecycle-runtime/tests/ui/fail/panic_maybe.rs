#[lifecycle_runtime::service_main(panic = "maybe", flavor = "single")]
async fn main() {}
