//! Fifty checks (twenty liveness, twenty readiness, ten startup), each
//! probed once before a scrape, so that `/metrics` carries the series of
//! fifty checks: the cost of a scrape at that size.

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("bench-lifecycle is a service of lifecycle's Linux benchmark (bench/run); it is not built for other systems");

use lifecycle_runtime::{liveness, readiness, service_main, startup};

macro_rules! checks {
    ($kind:ident: $($name:ident)*) => {
        $(
            #[$kind]
            fn $name() -> bool {
                true
            }
        )*
    };
}

checks!(liveness: l01 l02 l03 l04 l05 l06 l07 l08 l09 l10 l11 l12 l13 l14 l15 l16 l17 l18 l19 l20);
checks!(readiness: r01 r02 r03 r04 r05 r06 r07 r08 r09 r10 r11 r12 r13 r14 r15 r16 r17 r18 r19 r20);
checks!(startup: s01 s02 s03 s04 s05 s06 s07 s08 s09 s10);

#[service_main]
async fn main() {
    lifecycle_runtime::shutdown_signal().await;
}
