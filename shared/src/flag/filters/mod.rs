//! A flag's `filters` object: validation on write, dependency queries, and typed access for
//! every other module (which never walks its JSON by hand).

mod access;
pub(crate) mod dates;
mod validate;

pub use access::{ConditionSet, Filters, Section, VariantDef, payloads_mut, properties_mut};
pub use validate::*;
