//! `cachette`: an operator's command line for the caches the library
//! writes. `inspect` shows a key's entries and why each would or would not
//! be served, `bust` invalidates keys and tags the way the library does,
//! `doctor` checks a server against what the library needs, and `stats`
//! counts a namespace's names.

mod bust;
mod doctor;
mod failure;
mod inspect;
mod server;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect and operate the caches cachette writes in Redis.
#[derive(Parser)]
#[command(name = "cachette", version)]
struct Cli {
    /// The server: a single Redis or any node of a Redis Cluster.
    #[arg(
        long,
        env = "REDIS_URL",
        global = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    url: String,
    /// The namespace the caches were built with.
    #[arg(long, global = true, default_value = "cachette")]
    namespace: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Every function's entry under a key, and whether it would be served now.
    Inspect(inspect::Args),
    /// Invalidate keys and tags now, as `Cache::invalidate` does.
    Bust(bust::Args),
    /// Check the server against what cachette needs, and say what to change.
    Doctor(doctor::Args),
    /// Count the namespace's names by kind, and the memory they use.
    Stats(stats::Args),
}

/// What a command printed, and whether it succeeded.
pub struct Report {
    pub text: String,
    pub json: serde_json::Value,
    pub ok: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&cli.url, &cli.namespace, &args),
        Command::Bust(args) => bust::run(&cli.url, &cli.namespace, &args),
        Command::Doctor(args) => doctor::run(&cli.url, &cli.namespace, &args),
        Command::Stats(args) => stats::run(&cli.url, &cli.namespace, &args),
    };
    // Nothing printed may carry the URL's secrets, whoever wrote the text.
    let secrets = server::secrets(&cli.url);
    let scrub = |text: &str| server::scrub(text, &secrets);
    match result {
        Ok(report) => {
            if cli.json {
                let json = serde_json::to_string_pretty(&report.json).expect("JSON");
                println!("{}", scrub(&json));
            } else {
                print!("{}", scrub(&report.text));
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            let e = scrub(&e.to_string());
            if cli.json {
                println!("{}", serde_json::json!({ "error": e }));
            } else {
                eprintln!("error: {e}");
            }
            ExitCode::from(2)
        }
    }
}
