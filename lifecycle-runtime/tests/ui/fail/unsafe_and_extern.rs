#[lifecycle_runtime::service_main]
async unsafe fn main() {}

#[lifecycle_runtime::readiness]
unsafe fn database() -> bool {
    true
}

#[lifecycle_runtime::liveness]
extern "C" fn alive() -> bool {
    true
}

#[lifecycle_runtime::readiness]
const fn constant() -> bool {
    true
}
