//! `pid1 = false`: no init even when the process is PID 1 (and `pid1 =
//! true`, the default, is spelled out in service_main_arguments.rs).
//! (trybuild runs it: on port 0, it cannot collide with anything.)

#[lifecycle_runtime::service_main(probe_addr = "127.0.0.1:0", pid1 = false)]
async fn main() {}
