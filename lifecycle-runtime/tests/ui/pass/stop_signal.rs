//! `stop_signal`, here without the `SIG` prefix. (trybuild runs it: on
//! port 0, it cannot collide with anything.)

#[lifecycle_runtime::service_main(probe_addr = "127.0.0.1:0", stop_signal = "QUIT")]
async fn main() {}
