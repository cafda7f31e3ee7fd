//! HTTP load generator for a running partner-auth server.
//!
//! Each worker logs in through the mock provider, then loops over
//! `GET /api/session` and, every `--refresh-every` requests, a refresh
//! rotation, for a fixed duration. It reports throughput and latency
//! percentiles per operation. Targets are restricted to loopback addresses.
//!
//! ```text
//! cargo run --release -p partner-auth-benches --bin loadgen -- \
//!     --base http://127.0.0.1:8080 --workers 16 --seconds 10
//! ```

use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

/// Command-line settings.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for partner-auth (loopback only)"
)]
struct Args {
    /// Base URL of the server; must be a loopback address.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Concurrent workers, each with its own session.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Refresh once every this many session reads (0: never).
    #[arg(long, default_value_t = 10)]
    refresh_every: u32,
    /// Users to log in as, round-robin.
    #[arg(
        long,
        default_value = "nikhil,mukesh,raja,nitin",
        value_delimiter = ','
    )]
    users: Vec<String>,
}

#[derive(Default)]
struct Samples {
    session: Vec<Duration>,
    refresh: Vec<Duration>,
    login: Vec<Duration>,
    errors: u64,
}

fn is_loopback(base: &str) -> bool {
    let rest = base
        .strip_prefix("http://")
        .or_else(|| base.strip_prefix("https://"))
        .unwrap_or("");
    if rest.starts_with("[::1]") {
        return true;
    }
    let host = rest.split(['/', ':']).next().unwrap_or("");
    host == "localhost"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn worker(client: reqwest::Client, args: &Args, user: String, until: Instant) -> Samples {
    let mut out = Samples::default();
    let started = Instant::now();
    let login = client
        .post(format!("{}/api/login/mock", args.base))
        .json(&json!({ "user": user, "remember_me": true, "delivery": "body" }))
        .send()
        .await;
    let Ok(res) = login else {
        out.errors += 1;
        return out;
    };
    let Ok(body) = res.json::<Value>().await else {
        out.errors += 1;
        return out;
    };
    out.login.push(started.elapsed());
    let mut access = body["access_token"].as_str().unwrap_or_default().to_owned();
    let mut refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let mut n = 0u32;
    while Instant::now() < until {
        n += 1;
        if args.refresh_every > 0 && n.is_multiple_of(args.refresh_every) {
            let t = Instant::now();
            let res = client
                .post(format!("{}/api/token/refresh", args.base))
                .json(&json!({ "refresh_token": refresh, "delivery": "body" }))
                .send()
                .await;
            match res {
                Ok(r) if r.status().is_success() => {
                    let body: Value = r.json().await.unwrap_or_default();
                    access = body["access_token"].as_str().unwrap_or_default().to_owned();
                    refresh = body["refresh_token"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    out.refresh.push(t.elapsed());
                }
                _ => out.errors += 1,
            }
            continue;
        }
        let t = Instant::now();
        match client
            .get(format!("{}/api/session", args.base))
            .bearer_auth(&access)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => out.session.push(t.elapsed()),
            _ => out.errors += 1,
        }
    }
    out
}

fn report(name: &str, samples: &mut [Duration], seconds: f64) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    let line = format!(
        "{name:>8}: {:>8} requests {:>9.1}/s  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        samples.len(),
        samples.len() as f64 / seconds,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    write_line(&line);
}

#[expect(clippy::print_stdout, reason = "the report is the program's output")]
fn write_line(line: &str) {
    println!("{line}");
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if !is_loopback(&args.base) {
        return Err(
            "loadgen only targets loopback addresses (127.0.0.0/8, localhost, [::1])".into(),
        );
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(args.workers)
        .build()?;
    let args = std::sync::Arc::new(args);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();

    let mut tasks = Vec::new();
    for i in 0..args.workers {
        let user = args.users[i % args.users.len()].clone();
        let (client, args) = (client.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            worker(client, &args, user, until).await
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        let s = t.await?;
        all.session.extend(s.session);
        all.refresh.extend(s.refresh);
        all.login.extend(s.login);
        all.errors += s.errors;
    }
    let seconds = started.elapsed().as_secs_f64();
    write_line(&format!(
        "{} workers for {seconds:.1} s against {}",
        args.workers, args.base
    ));
    report("login", &mut all.login, seconds);
    report("session", &mut all.session, seconds);
    report("refresh", &mut all.refresh, seconds);
    write_line(&format!("  errors: {}", all.errors));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1",
            "http://127.9.9.9",
            "http://[::1]:80",
        ] {
            assert!(is_loopback(ok), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://example.com",
            "http://127.0.0.1.evil.com",
            "ftp://127.0.0.1",
        ] {
            assert!(!is_loopback(bad), "{bad}");
        }
    }
}
