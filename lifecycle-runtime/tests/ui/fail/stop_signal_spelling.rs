//! Upper case, as Kubernetes spells signals; a string, not a number.

mod lower_case {
    #[lifecycle_runtime::service_main(stop_signal = "sigquit")]
    async fn main() {}
}

mod number {
    #[lifecycle_runtime::service_main(stop_signal = 3)]
    async fn main() {}
}

#[lifecycle_runtime::service_main(stop_signal = "SIGQUIT ")]
async fn main() {}
