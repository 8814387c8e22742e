//! `#[service_main]` with its policies spelled out and the millisecond
//! values at their bound (a day). (trybuild runs it: on port 0, it cannot
//! collide with anything.)

#[lifecycle_runtime::service_main(
    probe_addr = "127.0.0.1:0",
    reasons = "show",
    probe_protocol = "http",
    metrics = true,
    pid1 = true,
    panic = "log",
    flavor = "current_thread",
    shutdown_timeout_ms = 86400000,
    drain_delay_ms = 0,
    connection_drain_ms = 86400000,
    stall_threshold_ms = 86400000
)]
async fn main() {}
