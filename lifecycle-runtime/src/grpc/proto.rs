include!("generated.rs");
