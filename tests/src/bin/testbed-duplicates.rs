//! A mistake the runtime must catch at start-up: two readiness checks with
//! the same name (both functions are called `database`). Exits 2.

mod primary {
    #[lifecycle_runtime::readiness]
    fn database() -> bool {
        true
    }
}

mod replica {
    #[lifecycle_runtime::readiness]
    fn database() -> bool {
        true
    }
}

#[lifecycle_runtime::service_main(probe_addr = "127.0.0.1:0")]
async fn main() {
    unreachable!("duplicate check names stop the service before main runs");
}
