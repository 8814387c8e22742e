//! `#[liveness]`, `#[readiness]`, `#[startup]`, `#[preflight]`,
//! `#[on_startup]` and `#[on_shutdown]`: keep the user's function as written
//! and submit a registration for it to `inventory`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, LitStr, ReturnType};

use crate::args::{parse_args, runtime_path, Errors};
use crate::builtin_checks::BUILTIN_CHECK_NAMES;
use crate::signature::{self, Subject};

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Liveness,
    Readiness,
    Startup,
    Preflight,
    OnStartup,
    OnShutdown,
}

impl Kind {
    /// The attribute's name: `liveness`, `on_startup`, ...
    fn as_str(self) -> &'static str {
        match self {
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
            Kind::Startup => "startup",
            Kind::Preflight => "preflight",
            Kind::OnStartup => "on_startup",
            Kind::OnShutdown => "on_shutdown",
        }
    }

    fn valid_args(self) -> &'static [&'static str] {
        match self {
            Kind::Liveness => &["name", "timeout_ms", "critical", "crate"],
            Kind::Readiness | Kind::Startup => {
                &["name", "timeout_ms", "critical", "interval_ms", "crate"]
            }
            Kind::Preflight => &["name", "timeout_ms", "crate"],
            Kind::OnStartup | Kind::OnShutdown => &["name", "order", "timeout_ms", "crate"],
        }
    }

    fn is_hook(self) -> bool {
        matches!(self, Kind::OnStartup | Kind::OnShutdown)
    }
}

/// What the attribute's arguments say, after validation.
struct Config {
    name: Option<LitStr>,
    timeout_ms: Option<u64>,
    critical: Option<bool>,
    interval_ms: Option<u64>,
    order: Option<i32>,
    krate: Option<syn::Path>,
}

pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    // On any error the user's item is still emitted, unchanged, so the rest
    // of the crate (and the IDE) keeps working; only the registration is
    // left out.
    let mut errors = Errors::default();
    let config = parse_config(kind, args, &mut errors);
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            errors.push_at(
                item_span(&item),
                format!(
                    "#[{}] can only be applied to a free `fn` or `async fn` with no parameters",
                    kind.as_str()
                ),
            );
            return with_errors(item, errors);
        }
    };
    check_signature(kind, &function, &mut errors);
    let name = registered_name(kind, &config, &function, &mut errors);
    match (config, errors.into_result()) {
        (Some(config), Ok(())) => {
            let registration = registration(kind, &config, &function, &name);
            quote!(#function #registration)
        }
        (_, result) => {
            let errors = result.err().map(|e| e.into_compile_error());
            quote!(#item #errors)
        }
    }
}

fn with_errors(item: TokenStream, errors: Errors) -> TokenStream {
    let errors = errors.into_result().err().map(|e| e.into_compile_error());
    quote!(#item #errors)
}

fn item_span(item: &TokenStream) -> Span {
    item.clone()
        .into_iter()
        .find(|token| !matches!(token, proc_macro2::TokenTree::Punct(_)))
        .map(|token| token.span())
        .unwrap_or_else(Span::call_site)
}

fn parse_config(kind: Kind, args: TokenStream, errors: &mut Errors) -> Option<Config> {
    let parsed = match parse_args(kind.as_str(), args, kind.valid_args(), errors) {
        Ok(parsed) => parsed,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let mut config = Config {
        name: None,
        timeout_ms: None,
        critical: None,
        interval_ms: None,
        order: None,
        krate: None,
    };
    for arg in &parsed {
        match arg.key.as_str() {
            "name" => config.name = arg.string(errors, "name = \"database\""),
            "timeout_ms" => config.timeout_ms = arg.millis(errors, 1, 100),
            "critical" => config.critical = arg.boolean(errors),
            "interval_ms" => config.interval_ms = arg.millis(errors, 1, 1000),
            "order" => config.order = arg.signed(errors),
            "crate" => config.krate = arg.crate_path(errors),
            other => unreachable!("argument `{other}` passed validation"),
        }
    }
    Some(config)
}

fn check_signature(kind: Kind, function: &ItemFn, errors: &mut Errors) {
    let subject = Subject {
        name: if kind.is_hook() {
            "lifecycle hooks"
        } else {
            "lifecycle checks"
        },
        singular: false,
        instead_of_parameters:
            "reach shared state through a static (e.g. once_cell::sync::OnceCell)",
        must_be_async: false,
    };
    signature::validate(&function.sig, &subject, errors);
}

fn registered_name(
    kind: Kind,
    config: &Option<Config>,
    function: &ItemFn,
    errors: &mut Errors,
) -> String {
    let (name, span) = match config.as_ref().and_then(|c| c.name.as_ref()) {
        Some(lit) => (lit.value(), lit.span()),
        None => {
            let ident = &function.sig.ident;
            let text = ident.to_string();
            (
                text.strip_prefix("r#").unwrap_or(&text).to_owned(),
                ident.span(),
            )
        }
    };
    if kind.is_hook() {
        if name.is_empty() {
            errors.push_at(span, "a hook name cannot be empty");
        }
        return name;
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        errors.push_at(
            span,
            format!(
                "check name {name:?} cannot be used in a probe path; use ASCII letters, digits, `-`, `_` or `.`"
            ),
        );
    } else if BUILTIN_CHECK_NAMES.contains(&name.as_str()) {
        errors.push_at(
            span,
            format!(
                "the check name `{name}` is reserved for a built-in check; choose another with `name = \"...\"`"
            ),
        );
    }
    name
}

fn registration(kind: Kind, config: &Config, function: &ItemFn, name: &str) -> TokenStream {
    let krate = runtime_path(config.krate.clone());
    let private = quote!(#krate::__private);
    let ident = &function.sig.ident;
    let option = |value: Option<u64>| match value {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let timeout_ms = option(config.timeout_ms);
    let call = call(kind, function, &krate, &private);
    let site = quote_spanned! {ident.span()=>
        #private::Site {
            module: ::core::module_path!(),
            file: ::core::file!(),
            line: ::core::line!(),
        }
    };
    let value = if kind.is_hook() {
        let hook_kind = match kind {
            Kind::OnStartup => quote!(OnStartup),
            _ => quote!(OnShutdown),
        };
        let order = config.order.unwrap_or(0);
        quote! {
            #private::HookRegistration {
                kind: #private::HookKind::#hook_kind,
                name: #name,
                order: #order,
                timeout_ms: #timeout_ms,
                call: #call,
                site: #site,
            }
        }
    } else {
        let check_kind = match kind {
            Kind::Liveness => quote!(Liveness),
            Kind::Readiness => quote!(Readiness),
            Kind::Startup => quote!(Startup),
            _ => quote!(Preflight),
        };
        let critical = config.critical.unwrap_or(true);
        let interval_ms = option(config.interval_ms);
        quote! {
            #private::CheckRegistration {
                kind: #private::CheckKind::#check_kind,
                name: #name,
                timeout_ms: #timeout_ms,
                critical: #critical,
                interval_ms: #interval_ms,
                call: #call,
                site: #site,
            }
        }
    };
    quote! {
        const _: () = {
            #private::inventory::submit! { #value }
        };
    }
}

/// The registration's `Call`: the user's function, called as it is
/// (`Async` or `Blocking`), its return value converted to what the runtime
/// takes.
fn call(kind: Kind, function: &ItemFn, krate: &TokenStream, private: &TokenStream) -> TokenStream {
    let ident = &function.sig.ident;
    let (output_ty, output_span) = match &function.sig.output {
        ReturnType::Default => (quote!(()), function.sig.ident.span()),
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span()),
    };
    let (with_boxed_causes, with_causes, from_return, convert_fn, result_ty) = if kind.is_hook() {
        (
            quote!(HookOutcomeWithBoxedCauses),
            quote!(HookOutcomeWithCauses),
            quote!(HookOutcomeFromReturn),
            "lifecycle_into_hook_outcome",
            quote!(#private::HookOutcome),
        )
    } else {
        (
            quote!(HealthWithBoxedCauses),
            quote!(HealthWithCauses),
            quote!(HealthFromReturn),
            "lifecycle_into_health",
            quote!(#krate::Health),
        )
    };
    // The runtime picks the conversion (an error's causes kept when it is
    // a `std::error::Error`) by method resolution on the concrete type. It
    // is spanned on the return type, so an unsupported type is reported
    // there, with the conversion trait's `on_unimplemented` message.
    let convert_fn = syn::Ident::new(convert_fn, output_span);
    let convert = |value: TokenStream| {
        quote_spanned! {output_span=>
            {
                #[allow(unused_imports)]
                use #private::{#with_boxed_causes as _, #with_causes as _, #from_return as _};
                let __lifecycle_returned: #output_ty = #value;
                (&&&#private::Returned::new(__lifecycle_returned)).#convert_fn()
            }
        }
    };
    if function.sig.asyncness.is_some() {
        let convert = convert(quote!(#ident().await));
        quote! {
            #private::Call::Async({
                fn __lifecycle_call() -> #private::BoxFuture<#result_ty> {
                    ::std::boxed::Box::pin(async { #convert })
                }
                __lifecycle_call
            })
        }
    } else {
        let convert = convert(quote!(#ident()));
        quote! {
            #private::Call::Blocking({
                fn __lifecycle_call() -> #result_ty {
                    #convert
                }
                __lifecycle_call
            })
        }
    }
}
