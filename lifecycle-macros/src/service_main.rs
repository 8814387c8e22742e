//! `#[service_main]`: turns `async fn main` into a plain `fn main` that hands
//! the user's body, unchanged, to `lifecycle_runtime`'s service driver.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, ReturnType};

use crate::args::{parse_args, runtime_path, Arg, Errors};
use crate::signature::{self, Subject};

const VALID_ARGS: &[&str] = &[
    "probe_addr",
    "shutdown_timeout_ms",
    "drain_delay_ms",
    "connection_drain_ms",
    "stall_threshold_ms",
    "max_tasks",
    "panic",
    "flavor",
    "worker_threads",
    "tracing",
    "reasons",
    "probe_protocol",
    "metrics",
    "pid1",
    "stop_signal",
    "crate",
];

/// The stop signals, as the runtime's `StopSignal::ALL` names them (this
/// crate cannot use the runtime's: a test keeps the two equal). Upper case,
/// as Kubernetes spells them; the `SIG` prefix may be left out.
const STOP_SIGNALS: &[&str] = &[
    "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH",
];

#[derive(Default)]
struct Config {
    probe_addr: Option<String>,
    shutdown_timeout_ms: Option<u64>,
    drain_delay_ms: Option<u64>,
    connection_drain_ms: Option<u64>,
    stall_threshold_ms: Option<u64>,
    max_tasks: Option<u64>,
    panic_log: bool,
    current_thread: bool,
    worker_threads: Option<u64>,
    tracing: Option<bool>,
    /// The `tracing` argument, for the error when it needs a feature.
    tracing_span: Option<Span>,
    /// `reasons`: `"loopback"` or `"show"` (every peer reads the checks'
    /// reasons).
    reasons: Option<String>,
    /// `probe_protocol`: the literal, `"http"` or `"grpc"`; the latter for
    /// the error when the runtime lacks its `grpc` feature.
    probe_protocol: Option<syn::LitStr>,
    metrics: Option<bool>,
    pid1: Option<bool>,
    /// `stop_signal`: the signal's full name (`"SIGQUIT"`) and its literal,
    /// for the error on Windows.
    stop_signal: Option<(&'static str, syn::LitStr)>,
    krate: Option<syn::Path>,
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let config = parse_config(args, &mut errors);
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            errors.push_at(
                item.clone()
                    .into_iter()
                    .next()
                    .map(|t| t.span())
                    .unwrap_or_else(proc_macro2::Span::call_site),
                "#[service_main] can only be applied to `async fn main()`",
            );
            let errors = errors.into_result().err().map(|e| e.into_compile_error());
            return quote!(#item #errors);
        }
    };
    check_signature(&function, &mut errors);
    match errors.into_result() {
        Ok(()) => generate(config.unwrap_or_default(), function),
        Err(error) => fallback(function, error),
    }
}

fn parse_config(args: TokenStream, errors: &mut Errors) -> Option<Config> {
    let parsed = match parse_args("service_main", args, VALID_ARGS, errors) {
        Ok(parsed) => parsed,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut config = Config::default();
    for arg in &parsed {
        match arg.key.as_str() {
            "probe_addr" => {
                if let Some(lit) = arg.string(errors, "probe_addr = \"0.0.0.0:8081\"") {
                    if lit.value().parse::<std::net::SocketAddr>().is_err() {
                        errors.push_at(
                            lit.span(),
                            "`probe_addr` expects an IP address and port, e.g. `probe_addr = \"0.0.0.0:8081\"`",
                        );
                    } else {
                        config.probe_addr = Some(lit.value());
                    }
                }
            }
            "shutdown_timeout_ms" => config.shutdown_timeout_ms = arg.millis(errors, 1, 25000),
            "drain_delay_ms" => config.drain_delay_ms = arg.millis(errors, 0, 5000),
            "connection_drain_ms" => config.connection_drain_ms = arg.millis(errors, 0, 5000),
            "stall_threshold_ms" => config.stall_threshold_ms = arg.millis(errors, 1, 10000),
            "max_tasks" => config.max_tasks = arg.unsigned(errors, 1, 10000),
            "worker_threads" => config.worker_threads = arg.unsigned(errors, 1, 4),
            "tracing" => {
                config.tracing = arg.boolean(errors);
                config.tracing_span = Some(arg.value.span());
            }
            "metrics" => config.metrics = arg.boolean(errors),
            "pid1" => config.pid1 = arg.boolean(errors),
            "stop_signal" => config.stop_signal = stop_signal(arg, errors),
            "crate" => config.krate = arg.crate_path(errors),
            "panic" => {
                if let Some(policy) = arg.one_of(errors, "panic policy", &["crash", "log"]) {
                    config.panic_log = policy == "log";
                }
            }
            "reasons" => {
                config.reasons = arg.one_of(errors, "reasons policy", &["loopback", "show"]);
            }
            "probe_protocol" => {
                let protocols = ["http", "grpc"];
                if arg.one_of(errors, "probe protocol", &protocols).is_some() {
                    config.probe_protocol = arg.string(errors, "probe_protocol = \"grpc\"");
                }
            }
            "flavor" => {
                let flavors = ["multi_thread", "current_thread"];
                if let Some(flavor) = arg.one_of(errors, "runtime flavor", &flavors) {
                    config.current_thread = flavor == "current_thread";
                }
            }
            other => unreachable!("argument `{other}` passed validation"),
        }
    }
    if config.current_thread && config.worker_threads.is_some() {
        if let Some(arg) = parsed.iter().find(|a| a.key == "worker_threads") {
            errors.push_at(
                arg.key_span,
                "`worker_threads` only applies to `flavor = \"multi_thread\"`",
            );
        }
    }
    Some(config)
}

/// `stop_signal = "SIGQUIT"` (or `"QUIT"`): one of [`STOP_SIGNALS`],
/// exactly, as `LIFECYCLE_STOP_SIGNAL` takes it.
fn stop_signal(arg: &Arg, errors: &mut Errors) -> Option<(&'static str, syn::LitStr)> {
    let lit = arg.string(errors, "stop_signal = \"SIGQUIT\"")?;
    let value = lit.value();
    if let Some(name) = stop_signal_named(&value) {
        return Some((name, lit));
    }
    let accepted = STOP_SIGNALS.join(", ");
    let hint = match stop_signal_named(&value.to_ascii_uppercase()) {
        Some(name) => format!(": `stop_signal = \"{name}\"`"),
        None => String::new(),
    };
    errors.push_at(
        lit.span(),
        format!("unknown stop signal {value:?}; expected one of {accepted} (upper case, the SIG prefix optional){hint}"),
    );
    None
}

/// The full name of the stop signal `value` names, with or without the
/// `SIG` prefix.
fn stop_signal_named(value: &str) -> Option<&'static str> {
    STOP_SIGNALS
        .iter()
        .find(|name| value == **name || Some(value) == name.strip_prefix("SIG"))
        .copied()
}

/// The runtime's `StopSignal` variant for the full name `name`: `SIGQUIT`
/// is `Sigquit`.
fn stop_signal_variant(name: &str) -> proc_macro2::Ident {
    format_ident!("Sig{}", name["SIG".len()..].to_ascii_lowercase())
}

fn check_signature(function: &ItemFn, errors: &mut Errors) {
    let subject = Subject {
        name: "`main`",
        singular: true,
        instead_of_parameters: "read arguments with std::env::args()",
        must_be_async: true,
    };
    signature::validate(&function.sig, &subject, errors);
}

impl Config {
    /// `probe_protocol = "grpc"`: its literal.
    fn grpc_protocol(&self) -> Option<&syn::LitStr> {
        self.probe_protocol
            .as_ref()
            .filter(|protocol| protocol.value() == "grpc")
    }
}

fn generate(config: Config, function: ItemFn) -> TokenStream {
    let krate = runtime_path(config.krate.clone());
    let private = quote!(#krate::__private);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let outer_ident = &sig.ident;
    let inner_ident = format_ident!("__lifecycle_service_main");
    let mut inner_sig = sig.clone();
    inner_sig.ident = inner_ident.clone();

    let requirements = requirements(&config, &private);
    let service_config = service_config(&config, &private);
    // The conversion is spanned on the return type, so an unsupported type
    // is reported there, with the trait's `on_unimplemented` message.
    let (output_ty, output_span) = match &sig.output {
        ReturnType::Default => (quote!(()), sig.ident.span()),
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
    };
    let convert = quote_spanned! {output_span=>
        <#output_ty as #private::MainOutcome>::into_main_outcome
    };
    quote! {
        #(#attrs)*
        #vis fn #outer_ident() {
            #requirements
            #inner_sig #block
            let __lifecycle_config = #service_config;
            #private::run_service(__lifecycle_config, || async {
                #convert(#inner_ident().await)
            })
        }
    }
}

/// What the arguments need of the runtime's features and of the target,
/// checked where only the generated code can see them: each a compile
/// error spanned on the argument that needs it.
fn requirements(config: &Config, private: &TokenStream) -> TokenStream {
    // The default subscriber sits behind a cargo feature of the runtime:
    // without it, this names the feature at compile time.
    let require_subscriber = config.tracing.unwrap_or(true).then(|| {
        let span = config.tracing_span.unwrap_or_else(Span::call_site);
        quote_spanned!(span=> #private::require_default_subscriber!();)
    });
    // gRPC probes need the runtime's `grpc` feature, which only the runtime
    // can see: it names the feature at compile time. Every token of the
    // call is spanned on the literal, so the error points at `"grpc"`.
    let require_grpc = config
        .grpc_protocol()
        .map(|lit| respan(quote!(#private::require_grpc_feature!(#lit);), lit.span()));
    // Windows has no signals: a Windows pod allows only SIGTERM (and
    // SIGKILL), and the console's events stop the service. The macro runs
    // on the host, so the target is asked by `cfg`, in the generated code.
    let unix_only = config
        .stop_signal
        .as_ref()
        .filter(|(name, _)| *name != "SIGTERM")
        .map(|(name, lit)| {
            let message = format!(
                "`stop_signal = \"{name}\"` is unix only: Windows pods allow only SIGTERM and SIGKILL, and Windows stops a service with its console events; leave `stop_signal` out of Windows builds"
            );
            respan(
                quote!(#[cfg(windows)] ::core::compile_error!(#message);),
                lit.span(),
            )
        });
    quote! {
        #require_subscriber
        #require_grpc
        #unix_only
    }
}

/// The runtime's `ServiceConfig` the arguments describe.
fn service_config(config: &Config, private: &TokenStream) -> TokenStream {
    let some_u64 = |value: Option<u64>| match value {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let probe_addr = match &config.probe_addr {
        Some(addr) => quote!(::core::option::Option::Some(#addr)),
        None => quote!(::core::option::Option::None),
    };
    let shutdown_timeout_ms = some_u64(config.shutdown_timeout_ms);
    let drain_delay_ms = some_u64(config.drain_delay_ms);
    let connection_drain_ms = some_u64(config.connection_drain_ms);
    let stall_threshold_ms = some_u64(config.stall_threshold_ms);
    let max_tasks = some_u64(config.max_tasks);
    let worker_threads = some_u64(config.worker_threads);
    let panic = if config.panic_log {
        quote!(#private::PanicPolicy::Log)
    } else {
        quote!(#private::PanicPolicy::Crash)
    };
    let flavor = if config.current_thread {
        quote!(#private::Flavor::CurrentThread)
    } else {
        quote!(#private::Flavor::MultiThread)
    };
    let reasons = if config.reasons.as_deref() == Some("show") {
        quote!(#private::ReasonsPolicy::Show)
    } else {
        quote!(#private::ReasonsPolicy::Loopback)
    };
    let probe_protocol = if config.grpc_protocol().is_some() {
        quote!(#private::ProbeProtocol::Grpc)
    } else {
        quote!(#private::ProbeProtocol::Http)
    };
    let stop_signal = {
        let name = config
            .stop_signal
            .as_ref()
            .map_or("SIGTERM", |(name, _)| name);
        let variant = stop_signal_variant(name);
        quote!(#private::StopSignal::#variant)
    };
    let metrics = config.metrics.unwrap_or(true);
    // On by default: it only acts when the process is PID 1.
    let pid1 = config.pid1.unwrap_or(true);
    let tracing = config.tracing.unwrap_or(true);
    quote! {
        #private::ServiceConfig {
            probe_addr: #probe_addr,
            shutdown_timeout_ms: #shutdown_timeout_ms,
            drain_delay_ms: #drain_delay_ms,
            connection_drain_ms: #connection_drain_ms,
            stall_threshold_ms: #stall_threshold_ms,
            max_tasks: #max_tasks,
            panic: #panic,
            flavor: #flavor,
            worker_threads: #worker_threads,
            tracing: #tracing,
            reasons: #reasons,
            probe_protocol: #probe_protocol,
            metrics: #metrics,
            pid1: #pid1,
            stop_signal: #stop_signal,
        }
    }
}

/// `tokens` with every span, inside groups too, set to `span`: an error
/// from the macro they call is then reported there.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                token = TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// On error: a plain `fn main` that still contains the user's body (so names
/// resolve and the IDE keeps working) next to the errors.
fn fallback(function: ItemFn, error: syn::Error) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = function;
    let outer_ident = &sig.ident;
    let mut inner_sig = sig.clone();
    inner_sig.ident = format_ident!("__lifecycle_service_main");
    let error = error.into_compile_error();
    quote! {
        #(#attrs)*
        #vis fn #outer_ident() {
            #[allow(dead_code, unused_variables)]
            #inner_sig #block
        }
        #error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_runtime::__private::StopSignal;

    #[test]
    fn the_stop_signals_are_the_runtimes_by_name_and_variant() {
        let runtime: Vec<&str> = StopSignal::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(STOP_SIGNALS, runtime);
        for name in STOP_SIGNALS {
            let signal = StopSignal::parse(name).unwrap();
            assert_eq!(
                stop_signal_variant(name).to_string(),
                format!("{signal:?}"),
                "the generated code names the runtime's variant for {name}"
            );
            // Both take the name without its prefix alike.
            let short = &name["SIG".len()..];
            assert_eq!(stop_signal_named(short), Some(*name));
            assert_eq!(StopSignal::parse(short), Some(signal));
        }
        for other in [
            "sigquit", "quit", "Quit", "SIGQUIT ", " QUIT", "SIG", "", "3",
        ] {
            assert_eq!(stop_signal_named(other), None, "{other:?}");
            assert_eq!(StopSignal::parse(other), None, "{other:?}");
        }
    }

    #[test]
    fn signals_that_cannot_mean_stop_are_rejected() {
        // Uncatchable, raised by a fault, or reporting something else.
        for name in [
            "SIGKILL", "SIGSTOP", "SIGCHLD", "SIGPIPE", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL",
        ] {
            for given in [name, &name["SIG".len()..]] {
                assert_eq!(stop_signal_named(given), None, "{given}");
            }
        }
    }
}
