//! The `recheck` binary: parses the command line (`cli`, this binary's own module,
//! not part of the library), calls the library, prints results and maps errors to
//! exit codes: 0 success, 1 a run or command failed, 2 bad usage.

mod cli;

use clap::Parser;
use cli::Cli;

#[tokio::main]
async fn main() {
    // Die quietly on a closed pipe (`recheck ... | head`), like other Unix tools,
    // instead of panicking inside println!.
    // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("recheck={default_level},warn")));
    // Colours only on a terminal: log lines in files and pipes stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();

    if let Err(err) = cli::run(cli).await {
        let (hint, code) = cli::diagnose(&err);
        eprintln!("error: {err:#}");
        if let Some(hint) = hint {
            eprintln!("hint: {hint}");
        }
        std::process::exit(code);
    }
}
