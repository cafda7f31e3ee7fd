//! Shared state of the session routes.

use std::sync::Arc;

use axum::extract::FromRef;
use partner_auth_core::{AuthProvider, SessionManager};

use crate::cookies::CookieSettings;

/// What the session routes need.
#[derive(Clone)]
pub struct AuthState {
    /// Sessions, tokens and the directory.
    pub sessions: Arc<SessionManager>,
    /// The mock provider; `POST /api/login/mock` answers 404 without one.
    pub mock: Option<Arc<dyn AuthProvider>>,
    /// How cookies are marked.
    pub cookies: CookieSettings,
}

impl std::fmt::Debug for AuthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthState")
            .field("mock", &self.mock.is_some())
            .field("cookies", &self.cookies)
            .finish_non_exhaustive()
    }
}

impl FromRef<AuthState> for Arc<SessionManager> {
    fn from_ref(state: &AuthState) -> Self {
        state.sessions.clone()
    }
}
