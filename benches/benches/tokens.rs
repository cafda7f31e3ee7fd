//! Access-token signing and verification, and a whole refresh through the
//! session manager on the in-memory store.
//!
//! `cargo bench -p partner-auth-benches --bench tokens`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_main};
use partner_auth_core::{
    AuthMode, Directory, KeyRing, MemorySessionStore, SessionConfig, SessionManager, SystemClock,
    TokenConfig, TokenIssuer, TracingEvents,
};

fn manager() -> SessionManager {
    let clock = Arc::new(SystemClock);
    let issuer = TokenIssuer::new(
        KeyRing::generate().expect("key"),
        TokenConfig::default(),
        clock.clone(),
    )
    .expect("issuer");
    SessionManager::new(
        Arc::new(MemorySessionStore::new()),
        Arc::new(issuer),
        Arc::new(Directory::launch().expect("seed")),
        clock,
        Arc::new(TracingEvents),
        SessionConfig::default(),
    )
    .expect("manager")
}

fn tokens(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let sessions = manager();
    let user = sessions
        .directory()
        .find_user("nikhil")
        .expect("seeded")
        .clone();
    let login = rt
        .block_on(sessions.login(&user, AuthMode::Mock, true))
        .expect("login");

    c.bench_function("access_token_issue_es256", |b| {
        b.iter(|| {
            sessions
                .issuer()
                .issue(black_box(&login.session))
                .expect("issue")
        });
    });
    c.bench_function("access_token_verify_es256", |b| {
        b.iter(|| {
            sessions
                .issuer()
                .verify(black_box(&login.access.token))
                .expect("verify")
        });
    });
    c.bench_function("access_token_reject_malformed", |b| {
        let junk = ".".repeat(8 * 1024);
        b.iter(|| sessions.issuer().verify(black_box(&junk)).is_err());
    });

    let mut current = login.refresh;
    c.bench_function("refresh_rotation_memory_store", |b| {
        b.iter(|| {
            let next = rt.block_on(sessions.refresh(&current)).expect("refresh");
            current = next.refresh;
        });
    });
}

/// The benchmark group (a module, so the generated function is documented).
mod groups {
    use super::tokens;

    criterion::criterion_group!(benches, tokens);
}

criterion_main!(groups::benches);
