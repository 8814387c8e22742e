#[lifecycle_runtime::readiness(timeout_ms = 0, colour = "red", critical = true, critical = false)]
async fn database(pool: u8) -> bool {
    pool > 0
}

#[lifecycle_runtime::service_main(probe_addr = "port 8081", worker_threads = 0, shutdown_timeout_ms = "soon")]
async fn main() {}
