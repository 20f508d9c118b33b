//! `impl Aggregate` for an `#[aggregate_impl]` block: the fold (`apply`, one arm per
//! `#[apply]`) and the dispatch (`handle`, one arm per `#[command]`, turning the method's `Ok`
//! value into a `Vec` of events and its error into the aggregate's).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Ident;
use syn::spanned::Spanned;

use crate::ast::{AggregateImpl, CommandFn, Emits, TypeRef};
use crate::expand::aggregate_impl::Names;
use crate::expand::krate_at;

pub(crate) fn expand(model: &AggregateImpl, names: &Names<'_>) -> TokenStream {
    let Names {
        event_enum,
        command_enum,
        ..
    } = names;
    let (impl_generics, _, where_clause) = model.item.generics.split_for_impl();
    let self_ty = &model.item.self_ty;

    let apply_body = if model.applies.is_empty() {
        quote!(match *__event {})
    } else {
        let arms = model.applies.iter().map(|a| {
            let ident = &a.event.ident;
            let method = &a.method;
            if a.valid {
                quote!(#event_enum::#ident(__e) => Self::#method(self, __e),)
            } else {
                quote!(#event_enum::#ident(_) => {})
            }
        });
        quote!(match __event { #(#arms)* })
    };

    // The commands whose method is called: a reported signature leaves its arm uncalled.
    let called = |c: &&CommandFn| c.valid && c.emits.is_some() && c.error_ty.is_some();
    let handle_arms = model.commands.iter().map(|c| {
        let ident = &c.command.ident;
        let method = &c.method;
        match (&c.emits, &c.error_ty) {
            (Some(emits), Some(error_ty)) if called(&c) => {
                let krate = krate_at(names.krate_path, error_ty.span());
                let into = quote_spanned! {error_ty.span()=>
                    ::core::result::Result::map_err(
                        Self::#method(self, __command),
                        ::core::convert::Into::<<Self as #krate::AggregateRoot>::Error>::into,
                    )
                };
                let collect = collect_events(emits, event_enum);
                quote! {
                    #command_enum::#ident(__command) => {
                        let __value = #into?;
                        #collect
                    }
                }
            }
            _ => quote!(#command_enum::#ident(_) => ::core::unreachable!(),),
        }
    });

    // On a non-generic impl, what the body needs of `#[derive(Aggregate)]` is written as
    // where clauses: rustc checks those at the impl, each once, on the token it is spanned
    // at. A missing derive is then one error on the user's `impl Account`, and an error type
    // that does not convert one error on that command's `E`; the body, which may assume
    // them, adds nothing. (A generic impl's where clauses would only be checked where the
    // impl is used, so there the body's own uses report, spanned the same way.)
    let self_krate = krate_at(names.krate_path, self_ty.span());
    let where_clause = if model.item.generics.params.is_empty() {
        let root = quote_spanned!(self_ty.span()=> #self_ty: #self_krate::AggregateRoot);
        let conversions = model.commands.iter().filter(called).filter_map(|c| {
            let error_ty = c.error_ty.as_ref()?;
            let krate = krate_at(names.krate_path, error_ty.span());
            Some(quote_spanned! {error_ty.span()=>
                #error_ty: ::core::convert::Into<<#self_ty as #krate::AggregateRoot>::Error>
            })
        });
        let written = where_clause.into_iter().flat_map(|w| &w.predicates);
        quote!(where #(#written,)* #root, #(#conversions,)*)
    } else {
        quote!(#where_clause)
    };
    // The header and signatures at the user's `impl Account`, so what rustc says about the
    // impl itself lands there. The body keeps call-site hygiene (a `macro_rules!` span on
    // `__event` would hide it).
    let header = quote_spanned! {self_ty.span()=>
        #[automatically_derived]
        impl #impl_generics #self_krate::Aggregate for #self_ty
    };
    let error = quote_spanned!(self_ty.span()=> <Self as #self_krate::AggregateRoot>::Error);
    let types = quote_spanned! {self_ty.span()=>
        type Event = #event_enum;
        type Command = #command_enum;
    };
    let fn_apply = quote_spanned!(self_ty.span()=> fn apply);
    let fn_handle = quote_spanned!(self_ty.span()=> fn handle);
    quote! {
        #header #where_clause {
            #types

            #fn_apply(&mut self, __event: &Self::Event) {
                #apply_body
            }

            #fn_handle(
                &self,
                __command: Self::Command,
            ) -> ::core::result::Result<::std::vec::Vec<Self::Event>, #error> {
                match __command {
                    #(#handle_arms)*
                }
            }
        }
    }
}

/// Turns the command's `Ok` value (`__value`, of the shape the user wrote) into
/// `Ok(Vec<Event>)`.
fn collect_events(emits: &Emits, event_enum: &Ident) -> TokenStream {
    // Each conversion is spanned at the user's type, so a type the enum cannot hold (say
    // `v2::Opened` emitted where `v1::Opened` is applied) is reported on the return type.
    let from = |t: &TypeRef| {
        let ty = &t.ty;
        // Every token of the path at the user's type, the enum's name included, or the
        // compiler falls back to the enclosing item for the span.
        let event_enum = Ident::new(&event_enum.to_string(), ty.span());
        quote_spanned!(ty.span()=> <#event_enum as ::core::convert::From<#ty>>::from)
    };
    let many = |t: &TypeRef, value: TokenStream| {
        let from = from(t);
        quote! {
            ::core::iter::Iterator::map(::core::iter::IntoIterator::into_iter(#value), #from)
        }
    };
    match emits {
        Emits::Nothing => quote! {
            let () = __value;
            ::core::result::Result::Ok(::std::vec::Vec::new())
        },
        Emits::One(t) => {
            let from = from(t);
            quote!(::core::result::Result::Ok(::std::vec![#from(__value)]))
        }
        Emits::Optional(t) | Emits::Many(t) => {
            let events = many(t, quote!(__value));
            quote!(::core::result::Result::Ok(::core::iter::Iterator::collect(#events)))
        }
        Emits::Tuple(parts) => {
            let bindings: Vec<Ident> = (0..parts.len())
                .map(|i| format_ident!("__part{i}"))
                .collect();
            let pushes = parts.iter().zip(&bindings).map(|(part, b)| match part {
                Emits::Nothing => quote!(let () = #b;),
                Emits::One(t) => {
                    let from = from(t);
                    quote!(__events.push(#from(#b));)
                }
                Emits::Optional(t) | Emits::Many(t) => {
                    let events = many(t, quote!(#b));
                    quote!(::core::iter::Extend::extend(&mut __events, #events);)
                }
                // Tuples do not nest (the parser reported it).
                Emits::Tuple(_) => quote!(),
            });
            let pushes_any = parts.iter().any(|p| !matches!(p, Emits::Nothing));
            let events = if pushes_any {
                quote!(let mut __events = ::std::vec::Vec::new();)
            } else {
                quote!(let __events = ::std::vec::Vec::new();)
            };
            quote! {
                let (#(#bindings,)*) = __value;
                #events
                #(#pushes)*
                ::core::result::Result::Ok(__events)
            }
        }
    }
}
