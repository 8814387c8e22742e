//! The variable's words are not the argument's: `metrics` takes a bool.

#[lifecycle_runtime::service_main(metrics = "off")]
async fn main() {}
