//! The one place that says which function signatures the attributes take:
//! a free function with no parameters, no generics, not `unsafe`, `const`
//! or `extern`; `#[service_main]` also requires `async`.

use syn::spanned::Spanned;
use syn::Signature;

use crate::args::Errors;

/// Who the signature belongs to, as error messages name it.
pub(crate) struct Subject {
    /// `` `main` `` or `lifecycle checks`.
    pub(crate) name: &'static str,
    /// Whether `name` takes a singular verb.
    pub(crate) singular: bool,
    /// Where to get what a parameter would have given.
    pub(crate) instead_of_parameters: &'static str,
    /// `#[service_main]` replaces `#[tokio::main]`, so `main` is async.
    pub(crate) must_be_async: bool,
}

impl Subject {
    fn verb(&self, singular: &'static str, plural: &'static str) -> &'static str {
        if self.singular {
            singular
        } else {
            plural
        }
    }
}

/// Pushes one error per offending token of `sig`.
pub(crate) fn validate(sig: &Signature, subject: &Subject, errors: &mut Errors) {
    let name = subject.name;
    if subject.must_be_async && sig.asyncness.is_none() {
        errors.push_at(
            sig.fn_token.span,
            "#[service_main] requires an `async fn`: write `async fn main()`",
        );
    }
    if !sig.inputs.is_empty() || sig.variadic.is_some() {
        let span = match &sig.variadic {
            Some(variadic) if sig.inputs.is_empty() => variadic.span(),
            _ => sig.inputs.span(),
        };
        errors.push_at(
            span,
            format!(
                "{name} {} no parameters; {}",
                subject.verb("takes", "take"),
                subject.instead_of_parameters
            ),
        );
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push_at(sig.generics.span(), format!("{name} cannot be generic"));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push_at(unsafety.span, format!("{name} cannot be `unsafe fn`"));
    }
    if let Some(constness) = &sig.constness {
        errors.push_at(constness.span, format!("{name} cannot be `const fn`"));
    }
    if let Some(abi) = &sig.abi {
        errors.push_at(abi.span(), format!("{name} cannot have an `extern` ABI"));
    }
}
