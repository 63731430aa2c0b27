//! `ask` the same question N times in one process and print the wall and CPU time per
//! call as JSON: the Rust side of the Python binding's overhead benchmark
//! (`scripts/bench-python.py` runs the same loop through `recheck.ask` beside it).
//!
//! `cargo run --release --example ask_loop -- HOME CALLS [SPEC]`

use std::{sync::Arc, time::Instant};

use recheck::{home::Home, ModelSettings, Settings, TraceStore};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[tokio::main]
async fn main() -> recheck::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(home), Some(calls)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u32>().ok())) else {
        eprintln!("usage: ask_loop HOME CALLS [SPEC]");
        std::process::exit(2);
    };
    let spec = args.get(3).map_or("sim:seed=1", String::as_str);
    let home = Home::resolve(Some(home.into()))?;
    home.ensure()?;
    let store = TraceStore::open(home.traces_dir())?;
    let model = ModelSettings::default().open(&home, spec, &|_| {})?;
    let question = "Is 7411 a prime number?";
    // What a binding does each call: settings into options, then the run.
    let ask = |model: Arc<dyn recheck::ChatModel>| {
        let store = store.clone();
        async move {
            let options = Settings::default().ask_options(&|_| unreachable_model())?;
            recheck::ask(&store, model, question, &options).await
        }
    };
    ask(model.clone()).await?;
    let (wall, cpu) = (Instant::now(), cpu_seconds());
    for _ in 0..calls {
        ask(model.clone()).await?;
    }
    let (wall, cpu) = (wall.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let per = |t: f64| t * 1000.0 / f64::from(calls.max(1));
    println!("{{\"calls\": {calls}, \"wall_ms\": {}, \"cpu_ms\": {}}}", per(wall), per(cpu));
    Ok(())
}

/// The built-in agents name no model of their own.
fn unreachable_model() -> recheck::Result<Arc<dyn recheck::ChatModel>> {
    Err(recheck::Error::BadInput("the built-in agents name no model of their own".into()))
}
