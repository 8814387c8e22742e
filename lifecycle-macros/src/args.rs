//! Attribute arguments: parsed into a plain list of `key = value` pairs, then
//! read key by key into each attribute's config struct. Every mistake is
//! collected (serde_derive style) so the user sees them all in one build.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Lit, Meta, Token, UnOp};

/// The largest millisecond value an argument may take: a day (the runtime
/// bounds its `LIFECYCLE_*_MS` variables alike).
pub(crate) const MAX_MILLIS: u64 = 86_400_000;

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(existing) => existing.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub(crate) fn push_at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn into_result(self) -> Result<(), syn::Error> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// One `key = value` argument, with the key's span for error messages.
pub(crate) struct Arg {
    pub(crate) key: String,
    pub(crate) key_span: Span,
    pub(crate) value: Expr,
}

/// Splits `a = 1, b = "x"` into arguments, checking each key against
/// `valid` and rejecting repeats. Syntax errors are returned immediately;
/// key errors are pushed to `errors` and the offending argument is dropped.
pub(crate) fn parse_args(
    attribute: &str,
    tokens: TokenStream,
    valid: &[&str],
    errors: &mut Errors,
) -> syn::Result<Vec<Arg>> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens)?;
    let mut args: Vec<Arg> = Vec::new();
    for meta in metas {
        let path = meta.path();
        let key = match path.get_ident() {
            Some(ident) => ident.to_string(),
            None => {
                errors.push_at(
                    path.span(),
                    unknown_argument_message(attribute, &quote::quote!(#path).to_string(), valid),
                );
                continue;
            }
        };
        let key_span = path.span();
        if !valid.contains(&key.as_str()) {
            errors.push_at(key_span, unknown_argument_message(attribute, &key, valid));
            continue;
        }
        let value = match meta {
            Meta::NameValue(name_value) => name_value.value,
            Meta::Path(_) => {
                errors.push_at(key_span, format!("`{key}` needs a value: `{key} = ...`"));
                continue;
            }
            Meta::List(list) => {
                errors.push_at(
                    list.delimiter.span().join(),
                    format!("`{key}` takes a value, not a list: `{key} = ...`"),
                );
                continue;
            }
        };
        if args.iter().any(|seen| seen.key == key) {
            errors.push_at(
                key_span,
                format!("duplicate argument `{key}`: give it once"),
            );
            continue;
        }
        args.push(Arg {
            key,
            key_span,
            value,
        });
    }
    Ok(args)
}

fn unknown_argument_message(attribute: &str, key: &str, valid: &[&str]) -> String {
    let list = valid
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("unknown argument `{key}` for #[{attribute}]; valid arguments are: {list}")
}

impl Arg {
    fn literal(&self) -> Option<&Lit> {
        match &self.value {
            Expr::Lit(ExprLit { lit, .. }) => Some(lit),
            _ => None,
        }
    }

    pub(crate) fn string(&self, errors: &mut Errors, example: &str) -> Option<syn::LitStr> {
        match self.literal() {
            Some(Lit::Str(s)) => Some(s.clone()),
            _ => {
                errors.push_at(
                    self.value.span(),
                    format!("`{}` expects a string literal, e.g. `{example}`", self.key),
                );
                None
            }
        }
    }

    pub(crate) fn boolean(&self, errors: &mut Errors) -> Option<bool> {
        match self.literal() {
            Some(Lit::Bool(b)) => Some(b.value),
            _ => {
                errors.push_at(
                    self.value.span(),
                    format!(
                        "`{}` expects `true` or `false`, e.g. `{} = false`",
                        self.key, self.key
                    ),
                );
                None
            }
        }
    }

    /// A string literal that must be one of `choices`.
    pub(crate) fn one_of(
        &self,
        errors: &mut Errors,
        what: &str,
        choices: &[&str],
    ) -> Option<String> {
        let example = format!("{} = {:?}", self.key, choices[0]);
        let lit = self.string(errors, &example)?;
        let value = lit.value();
        if choices.contains(&value.as_str()) {
            return Some(value);
        }
        let expected = choices
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(" or ");
        errors.push_at(
            lit.span(),
            format!("unknown {what} {value:?}; expected {expected}"),
        );
        None
    }

    /// A whole number no smaller than `min`.
    pub(crate) fn unsigned(&self, errors: &mut Errors, min: u64, example: u64) -> Option<u64> {
        let example = format!("`{} = {example}`", self.key);
        let Some(Lit::Int(int)) = self.literal() else {
            errors.push_at(
                self.value.span(),
                format!("`{}` expects a whole number, e.g. {example}", self.key),
            );
            return None;
        };
        match int.base10_parse::<u64>() {
            Ok(n) if n >= min => Some(n),
            Ok(_) => {
                errors.push_at(
                    int.span(),
                    format!("`{}` must be at least {min}, e.g. {example}", self.key),
                );
                None
            }
            Err(e) => {
                errors.push_at(int.span(), format!("`{}`: {e}", self.key));
                None
            }
        }
    }

    /// A number of milliseconds no smaller than `min` and at most
    /// [`MAX_MILLIS`] (a day): a larger one is surely a mistake, and its
    /// sums (the grace period, deadlines) must not overflow.
    pub(crate) fn millis(&self, errors: &mut Errors, min: u64, example: u64) -> Option<u64> {
        let n = self.unsigned(errors, min, example)?;
        if n > MAX_MILLIS {
            let span = self.literal().map_or_else(|| self.value.span(), Lit::span);
            errors.push_at(
                span,
                format!(
                    "`{}` must be at most {MAX_MILLIS} (a day, in milliseconds), e.g. `{} = {example}`",
                    self.key, self.key
                ),
            );
            return None;
        }
        Some(n)
    }

    /// A signed 32-bit integer, negative numbers included.
    pub(crate) fn signed(&self, errors: &mut Errors) -> Option<i32> {
        let (negative, lit) = match &self.value {
            Expr::Unary(ExprUnary {
                op: UnOp::Neg(_),
                expr,
                ..
            }) => match &**expr {
                Expr::Lit(ExprLit { lit, .. }) => (true, Some(lit)),
                _ => (true, None),
            },
            Expr::Lit(ExprLit { lit, .. }) => (false, Some(lit)),
            _ => (false, None),
        };
        let Some(Lit::Int(int)) = lit else {
            errors.push_at(
                self.value.span(),
                format!(
                    "`{}` expects a whole number, e.g. `{} = -1`",
                    self.key, self.key
                ),
            );
            return None;
        };
        let text = if negative {
            format!("-{}", int.base10_digits())
        } else {
            int.base10_digits().to_owned()
        };
        match text.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.push_at(
                    self.value.span(),
                    format!("`{}` must fit in an i32", self.key),
                );
                None
            }
        }
    }

    /// `crate = "path"`: the path under which the runtime crate is reachable.
    pub(crate) fn crate_path(&self, errors: &mut Errors) -> Option<syn::Path> {
        let lit = self.string(errors, "crate = \"lifecycle_runtime\"")?;
        match lit.parse_with(syn::Path::parse_mod_style) {
            Ok(path) => Some(path),
            Err(_) => {
                errors.push_at(
                    lit.span(),
                    "`crate` expects a path to the lifecycle_runtime crate, e.g. `crate = \"::my_renamed_runtime\"`",
                );
                None
            }
        }
    }
}

/// The tokens that name the runtime crate in generated code.
pub(crate) fn runtime_path(custom: Option<syn::Path>) -> TokenStream {
    match custom {
        Some(path) => quote::quote!(#path),
        None => quote::quote!(::lifecycle_runtime),
    }
}
