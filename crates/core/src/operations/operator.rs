//! [`Operator`]: the operator's side of the domain, apart from the end-user flows on
//! [`Authority`]. What the `tessera admin` commands and the admin console do — clients, users,
//! grants, audit events, the console's session and its audited actions — is a method here, each
//! file of `operations/` adding its own `impl Operator` block.

use crate::authority::Authority;

/// The operator's actions on the domain, over the same store, clock and caches as the
/// [`Authority`] it was obtained from.
#[derive(Debug, Clone)]
pub struct Operator {
    pub(crate) authority: Authority,
}

impl Authority {
    /// The operator's facade over this authority's state (cheap: the state is shared).
    pub fn operator(&self) -> Operator {
        Operator {
            authority: self.clone(),
        }
    }
}
