//! `partner-auth-test-oidc`: runs the test OpenID provider on loopback and
//! prints its base URL (the issuer) on the first line of stdout.
//!
//! ```text
//! partner-auth-test-oidc --listen 127.0.0.1:4444 --client-id test-client \
//!     --client-secret test-secret --default-user nikhil@example.com
//! ```

use std::io::Write;
use std::net::SocketAddr;

use clap::Parser;
use partner_auth_test_oidc::{Config, spawn};

/// A test OpenID Connect provider. Never expose it: it signs in whoever asks.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; loopback only. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The client id to accept.
    #[arg(long, default_value = "test-client")]
    client_id: String,
    /// The client secret to accept.
    #[arg(long, default_value = "test-secret")]
    client_secret: String,
    /// A redirect URI to accept (repeatable); without any, every loopback URI.
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// The user signed in when the request names nobody.
    #[arg(long, default_value = "nikhil@example.com")]
    default_user: String,
    /// `max-age` of the JWKS response, in seconds.
    #[arg(long, default_value_t = 3600)]
    jwks_max_age: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let config = Config {
        client_id: args.client_id,
        client_secret: args.client_secret,
        redirect_uris: args.redirect_uris,
        default_user: args.default_user,
        issuer: None,
        jwks_max_age: args.jwks_max_age,
    };
    let bound = spawn(config, args.listen).await?;

    let mut out = std::io::stdout();
    writeln!(out, "http://{bound}")?;
    out.flush()?;

    tokio::signal::ctrl_c().await
}
