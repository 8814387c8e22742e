#[lifecycle_runtime::readiness]
async fn database(url: &str) -> bool {
    !url.is_empty()
}

fn main() {}
