//! What a connection is set up as: [`PoolKey`].

use std::sync::Arc;

use crate::config::Credentials;

/// What a connection must be set up as: clients share connections only when these
/// match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PoolKey {
    pub db: u32,
    pub creds: Option<Arc<Credentials>>,
    pub resp3: bool,
}
