#[lifecycle_runtime::service_main]
async fn main(args: Vec<String>) {
    drop(args);
}
