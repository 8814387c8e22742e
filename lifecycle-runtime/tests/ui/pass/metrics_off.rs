//! `metrics = false`: no `/metrics`, no Prometheus annotations in the
//! manifest. (trybuild runs it: on port 0, it cannot collide with
//! anything.)

#[lifecycle_runtime::service_main(probe_addr = "127.0.0.1:0", metrics = false)]
async fn main() {}
