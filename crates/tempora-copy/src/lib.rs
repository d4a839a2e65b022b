//! COPY's data formats (text, CSV, binary): decoding client data into Arrow
//! batches of a table's columns and encoding result batches for COPY TO.
//!
//! The pgwire layer feeds CopyData payloads to a [`CopyDecoder`] and sends
//! what a [`CopyEncoder`] produces; nothing here does I/O. Options come from
//! the parsed statement through [`CopyOptions::from_sql`], validated with
//! PostgreSQL's rules and messages.

// TemporaError (tempora-common) is what every layer returns; its size is
// not this crate's to change.
#![allow(clippy::result_large_err)]

pub mod datetime;
mod decode;
mod encode;
pub mod interval;
pub mod json;
pub mod numeric;
mod options;
pub mod text;
pub mod values;
pub mod zone;

pub use decode::{CopyDecoder, NotNull, BINARY_SIGNATURE, DEFAULT_MAX_LINE_BYTES};
pub use encode::{binary_values, output_text, CopyEncoder};
pub use options::{CopyFormat, CopyOptionArg, CopyOptions, ForceQuote, Header};

#[cfg(test)]
mod tests;
