//! A service with its own command line (clap): lifecycle handles only its
//! `--lifecycle-*` flags, before `main` runs, and leaves every other
//! argument to the application. It also brings its own logging
//! (`tracing = false`): lifecycle then installs no subscriber, and its
//! errors still reach stderr.
//!
//! ```text
//! cargo run -p cli-args -- --message hi --repeat 2
//! cargo run -p cli-args -- --lifecycle-manifest
//! ```

use clap::Parser;
use lifecycle_runtime::{readiness, service_main};

/// The application's own arguments.
#[derive(Parser, Debug)]
#[command(about = "An example service with its own arguments")]
struct Args {
    /// What to print.
    #[arg(long, default_value = "hello")]
    message: String,
    /// How many times.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
}

#[readiness]
fn always() -> bool {
    true
}

#[service_main(probe_addr = "127.0.0.1:0", tracing = false)]
async fn main() {
    let args = Args::parse();
    for _ in 0..args.repeat {
        println!("message={}", args.message);
    }
}
