//! `#[derive(Projection)]`, `#[derive(Reactor)]`, `#[projection_impl]` and `#[reactor_impl]`.
//!
//! The derive gives the listener its name, version and kind (`es_core::__private::
//! ListenerMeta`); the impl attribute implements `es_core::Projection` from the `#[on]`
//! handlers: the stored names it reads, the context its handlers take, and `handle`, which
//! decodes a record as the handler's event type (through the event's upcasters) and calls it.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, ItemImpl};

use crate::ast::listener::{self, Kind, ListenerImpl};
use crate::attr;
use crate::ctxt::Ctxt;
use crate::expand::{krate, with_errors};
use crate::render::render;
use crate::symbol::{PROJECTION, REACTOR};

/// `#[derive(Projection)]` or `#[derive(Reactor)]`.
pub(crate) fn derive(input: &DeriveInput, kind: Kind) -> TokenStream {
    let cx = Ctxt::new();
    let ident = &input.ident;
    let attr = match kind {
        Kind::Projection => PROJECTION,
        Kind::Reactor => REACTOR,
    };
    let attrs = attr::listener_attrs(&cx, &input.attrs, attr, ident);
    let krate = krate(attrs.krate.as_ref());
    let name = attrs.name;
    let version = attrs.version;
    let ddl = attrs.ddl.map(|d| quote!(const DDL: &'static str = #d;));
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let (kind, read_model) = match kind {
        Kind::Projection => (
            quote!(#krate::projection::Kind::ReadModel),
            quote_spanned! {ident.span()=>
                #[automatically_derived]
                impl #impl_generics #krate::ReadModel for #ident #ty_generics #where_clause {}
            },
        ),
        Kind::Reactor => (
            quote!(#krate::projection::Kind::Reactor),
            TokenStream::new(),
        ),
    };
    let tokens = quote_spanned! {ident.span()=>
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::__private::ListenerMeta for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
                const VERSION: u32 = #version;
                const KIND: #krate::projection::Kind = #kind;
                #ddl
            }
            #read_model
        };
    };
    with_errors(cx, tokens)
}

/// `#[projection_impl]` or `#[reactor_impl]`: parse, check, emit.
pub(crate) fn attribute(args: TokenStream, input: TokenStream, kind: Kind) -> TokenStream {
    let cx = Ctxt::new();
    let attribute = kind.attribute();
    let krate_path = attr::listener_impl_args(&cx, attribute, args);
    let item = match syn::parse2::<ItemImpl>(input.clone()) {
        Ok(item) => item,
        Err(err) => {
            cx.error_at(
                err.span(),
                format!("`#[{attribute}]` goes on the listener's inherent impl block: `impl Balances {{ ... }}`"),
            );
            return with_errors(cx, input);
        }
    };
    let mut model = listener::parse(&cx, item, kind, krate_path.as_ref());
    let context = check(&cx, &mut model);
    let krate = krate(krate_path.as_ref());
    let tokens = expand(&model, &krate, context.as_ref());
    with_errors(cx, tokens)
}

/// Rules across handlers: each event type once; one context type. Returns the context; a
/// handler that breaks a rule is reported and not called.
fn check(cx: &Ctxt, model: &mut ListenerImpl) -> Option<syn::Type> {
    let mut broken = Vec::new();
    for (i, h) in model.handlers.iter().enumerate() {
        if let Some(first) = model.handlers[..i]
            .iter()
            .find(|o| o.event.same_type(&h.event))
        {
            cx.error_spanned_by(
                &h.event.ty,
                format!(
                    "`{}` is handled twice (also by `{}`): one `#[on]` handler per event type",
                    render(&h.event.ty),
                    first.method
                ),
            );
        }
    }
    let mut context: Option<&crate::ast::TypeRef> = None;
    for (i, h) in model.handlers.iter().enumerate() {
        let Some(c) = &h.context else { continue };
        match context {
            None => context = Some(c),
            Some(first) if first.same_type(c) => {}
            Some(first) => {
                broken.push(i);
                cx.error_spanned_by(
                &c.ty,
                format!(
                    "every handler of one listener takes the same context: `{}` here, `{}` before; the store supplies one (on PostgreSQL: `&mut PgConnection`)",
                    render(&c.ty),
                    render(&first.ty)
                ),
            );
            }
        }
    }
    let context = context.map(|c| c.ty.clone());
    for i in broken {
        model.handlers[i].valid = false;
    }
    context
}

fn expand(model: &ListenerImpl, krate: &TokenStream, context: Option<&syn::Type>) -> TokenStream {
    let item = &model.item;
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let context_ty = context.map_or_else(|| quote!(()), ToTokens::to_token_stream);
    let event_types = model.handlers.iter().map(|h| {
        let ty = &h.event.ty;
        quote_spanned!(ty.span()=> <#ty as #krate::Event>::NAME)
    });
    let arms = model.handlers.iter().filter(|h| h.valid).map(|h| {
        let ty = &h.event.ty;
        let method = &h.method;
        let event = if h.envelope {
            quote!(&#krate::__private::envelope_of(__record, __event))
        } else {
            quote!(&__event)
        };
        let call = match (&h.context, h.is_async) {
            (Some(_), false) => quote!(self.#method(#event, __cx)),
            (Some(_), true) => quote!(self.#method(#event, __cx).await),
            (None, false) => quote!(self.#method(#event)),
            (None, true) => quote!(self.#method(#event).await),
        };
        // The handler's return type must be `()` or `Result<(), E: Debug>`: checked at it.
        let output_span = match &h.output {
            syn::ReturnType::Default => method.span(),
            syn::ReturnType::Type(_, ty) => ty.span(),
        };
        let handled =
            quote_spanned!(output_span=> #krate::__private::IntoHandled::into_handled(__result));
        quote! {
            if __record.event_type == <#ty as #krate::Event>::NAME {
                let __event = #krate::__private::decode_record::<#ty>(__record)?;
                let __result = #call;
                return #handled;
            }
        }
    });
    quote! {
        #item
        const _: () = {
            #[automatically_derived]
            impl #impl_generics #krate::Projection for #self_ty #where_clause {
                const NAME: &'static str = <Self as #krate::__private::ListenerMeta>::NAME;
                const VERSION: u32 = <Self as #krate::__private::ListenerMeta>::VERSION;
                const KIND: #krate::projection::Kind = <Self as #krate::__private::ListenerMeta>::KIND;
                const EVENT_TYPES: &'static [&'static str] = &[#(#event_types),*];
                const DDL: &'static str = <Self as #krate::__private::ListenerMeta>::DDL;
                type Context = #context_ty;

                fn handle<'__a>(
                    &'__a mut self,
                    __record: &'__a #krate::RecordedEvent,
                    __cx: &'__a mut #context_ty,
                ) -> #krate::projection::HandleFuture<'__a> {
                    ::std::boxed::Box::pin(async move {
                        #(#arms)*
                        let _ = (__record, __cx);
                        ::core::result::Result::Ok(())
                    })
                }
            }
        };
    }
}
