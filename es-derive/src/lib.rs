//! Procedural macros of `es-core`. Use them through `es_core::prelude`.
use proc_macro::TokenStream;

/// Derives `es_core::Event`.
#[proc_macro_derive(Event, attributes(event))]
pub fn derive_event(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// Derives `es_core::Command`.
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// Derives `es_core::AggregateRoot`.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
/// Implements `es_core::Aggregate`.
#[proc_macro_attribute]
pub fn aggregate_impl(_args: TokenStream, input: TokenStream) -> TokenStream {
    input
}
