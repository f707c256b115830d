//! HTTP plumbing shared by every domain: extractors, fallbacks and middleware.

pub mod client_ip;
pub mod deadline;
pub mod fallback;
pub mod json;
pub mod params;
pub mod validation;

pub use json::ValidatedJson;
pub use params::{IdPairPath, IdPath, Page, PageMeta, Paginated, QueryParams, ReferencePath};
