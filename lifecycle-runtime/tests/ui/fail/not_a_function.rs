#[lifecycle_runtime::liveness]
struct Alive;

#[lifecycle_runtime::service_main]
const MAIN: () = ();

fn main() {}
