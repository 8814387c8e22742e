//! A signal that cannot mean "stop" (uncatchable, raised by a fault, or
//! reporting something else) is refused, every mistake at once.

#[lifecycle_runtime::service_main(stop_signal = "SIGKILL", flavor = "single")]
async fn main() {}

mod segv {
    #[lifecycle_runtime::service_main(stop_signal = "SEGV")]
    async fn main() {}
}
