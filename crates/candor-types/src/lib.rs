//! Candor's domain vocabulary. Pure data: no I/O, no database, no crypto.
//!
//! Everything here is shared by the policy engine, the store, the use cases and the HTTP layer.

pub mod consent;
pub mod deadline;
pub mod event;
pub mod id;
pub mod money;
pub mod time;

pub use consent::{ConsentAction, ConsentRecord, ConsentSource, ConsentState};
pub use deadline::{Deadlines, Regime as RightsRegime};
pub use event::{EventKind, IncomingEvent, SegmentError};
pub use id::{Category, EventId, KeyId, NameError, Purpose, Scope, SubjectId, TenantId};
pub use money::{Currency, MoneyError};
pub use time::Timestamp;
