//! The governance vocabulary as values that can only be obtained by parsing.
//!
//! Every rule a request must meet lives here; `api` only maps wire messages
//! onto these parsers, and `journal` only ever sees bytes that passed them.

mod event;
mod kind;
mod names;
mod validate;

pub use event::{AppendItem, MAX_BATCH_BYTES, MAX_BATCH_ITEMS, MAX_EVENT_BYTES, ValidEvent};
pub use kind::EventKind;
pub(crate) use names::is_identity;
pub use names::{ACCESS_SUBJECT, ActorName, IdempotencyKey, SubjectName};
pub use validate::{SCOPE_RULE, TOKEN_ID_RULE, grants, is_scope, is_token_id, principal};
