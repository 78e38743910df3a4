//! `transform`: one log event's message through `record::classify` and
//! `document::write_item`; the bulk item must be exactly two valid JSON lines.
//! The checks live in `cwl_indexer_fuzz::transform`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cwl_indexer_fuzz::transform(data));
