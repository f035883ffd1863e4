//! Users, attributes, groups, roles, the audit trail and the signing keys.

use axum::Router;

use crate::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
}
