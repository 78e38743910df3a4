//! Stages 3 and 4, index: each log event becomes one bulk item (a `create` action with its
//! daily index and deterministic `_id`, or on a Serverless time-series collection an `index`
//! action without `_id`, and the document line) written into one reusable body,
//! cut into chunks under `BULK_MAX_BYTES`; plus the index templates the documents are mapped
//! by, and the other documents the pipeline writes (dead letters, repaired records).
//!
//! - `document`: one event's item; `json`: the string escaping it writes with; `promoted`: the
//!   `aws.cloudtrail.*` copies and the computed `event.outcome`, `user.name`.
//! - `bulk`: the body and its chunks, each item's byte range kept for re-slicing on retry.
//! - `template`: the document and dead-letter templates, built from [`crate::schema`].
//! - `dead_letter`, `repair`: the dead-letter document and the duplicate-key re-encoding.
//! - `family`: what the other log types' writers share (daily `<prefix>-<family>-*` index,
//!   typed fields, `@unindexed`, templates from a field table); one writer each:
//!   `vpcflow_doc`, `guardduty_doc`, `resolver_doc`, `waf_doc`.

pub(crate) mod bulk;
pub(crate) mod dead_letter;
pub(crate) mod document;
pub(crate) mod family;
pub(crate) mod guardduty_doc;
pub(crate) mod json;
pub(crate) mod promoted;
pub(crate) mod repair;
pub(crate) mod resolver_doc;
pub(crate) mod template;
pub(crate) mod vpcflow_doc;
pub(crate) mod waf_doc;

pub use bulk::{BulkChunk, BulkEncoder, Item, Target};
pub use dead_letter::{Failure, dead_letter_index, write_dead_letter};
pub use document::{DocKind, Origin, index_name, write_document, write_item};
pub use json::{write_escaped, write_json_str};
pub use repair::push_repaired;
pub use template::{
    COMPONENTS, Composed, Flavor, TEMPLATE_VERSION, component_name, composed_templates, deadletter_prefix,
    deadletter_template, deadletter_template_name, document_patterns, document_template, family_templates,
    family_templates_with, template_name,
};
