//! `envelope`: arbitrary bytes as `awslogs.data` text, as a decompressed envelope, and
//! (structure-aware) gzipped and base64-encoded here, each through the whole handler.
//! The checks live in `cwl_indexer_fuzz::envelope`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cwl_indexer_fuzz::envelope(data));
