//! `#[command]` and `#[apply]` where no `#[aggregate_impl]` took them: inside the block the
//! attribute strips them before they run, so when one runs it is outside. It re-emits the
//! item as written, plus one error on the marker that says where it belongs.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::{ImplItemFn, ItemFn};

use crate::ast::Marker;
use crate::symbol::COMMAND;

pub(crate) fn stray(marker: Marker, item: TokenStream) -> TokenStream {
    let name = marker.symbol();
    let method = syn::parse2::<ImplItemFn>(item.clone())
        .map(|f| f.sig.ident)
        .or_else(|_| syn::parse2::<ItemFn>(item.clone()).map(|f| f.sig.ident));
    let message = match method {
        Ok(method) => format!(
            "`#[{name}]` only works inside an `#[aggregate_impl]` block: add `#[aggregate_impl]` to the `impl` block that holds `fn {method}`"
        ),
        // Above `#[derive(Command)]`, the derive's helper is not in scope yet.
        Err(_) if name == COMMAND => format!(
            "`#[{name}(...)]` on a type configures `#[derive(Command)]`: write it below the `#[derive(Command)]` line; on a method, `#[{name}]` only works inside an `#[aggregate_impl]` block"
        ),
        Err(_) => format!(
            "`#[{name}]` marks a method of an `#[aggregate_impl]` block: `#[apply] fn opened(&mut self, event: &Opened)`"
        ),
    };
    // The call site of an attribute macro is the attribute itself: the user's `#[command]`.
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote!(#item #error)
}

/// `#[on]` where no `#[projection_impl]` / `#[reactor_impl]` took it.
pub(crate) fn stray_on(item: TokenStream) -> TokenStream {
    let method = syn::parse2::<ImplItemFn>(item.clone())
        .map(|f| f.sig.ident)
        .or_else(|_| syn::parse2::<ItemFn>(item.clone()).map(|f| f.sig.ident));
    let message = match method {
        Ok(method) => format!(
            "`#[on]` only works inside a `#[projection_impl]` or `#[reactor_impl]` block: add the one for your listener to the `impl` block that holds `fn {method}`"
        ),
        Err(_) => "`#[on]` marks a handler of a `#[projection_impl]` or `#[reactor_impl]` block: `#[on] fn deposited(&mut self, e: &MoneyDeposited)`".to_owned(),
    };
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote!(#item #error)
}
