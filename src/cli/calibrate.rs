//! `recheck calibrate`: fit the model judge's label offsets on labelled records, and
//! the `--calibration` flag every judging command shares.

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use recheck::{
    agents::{
        calibration::{self, CalibrationFile, LabelLogprobs},
        Calibration, Label,
    },
    home::Home,
    orchestrator::{ClaimUnit, VerifyOptions},
    trace::{run_kind, RunStatus},
};

use super::verify::records;

/// Arguments of `recheck calibrate`.
#[derive(Debug, Args)]
#[command(after_help = "Each record is a claim to check: `recheck verify`'s fields (the answer is the claim, \
the contexts its evidence) plus a gold `label`: supported / SUPPORT / true, contradicted / CONTRADICT / REFUTES / \
Refuted / false, or not_enough_info / NEI / unknown / Not Enough Evidence (AVeriTeC's Conflicting \
Evidence/Cherrypicking counts as not enough info). Each answer is judged whole, uncalibrated; the offsets that \
maximise balanced accuracy over the three labels are written to --out, for `--calibration FILE` or \
judge.toml's `calibration`.")]
pub struct CalibrateArgs {
    /// A JSONL (or CSV) file of labelled records.
    #[arg(value_name = "LABELLED.jsonl")]
    pub labelled: PathBuf,

    /// Where the calibration file goes (`-` standard output).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Model spec of the judge to calibrate (the judge.toml `model`, if it names one, wins).
    #[arg(long, short, default_value = "local", value_name = "SPEC")]
    pub model: String,

    /// Where a field is in records of another shape: NAME=PATH (id, question, answer,
    /// contexts, label); repeatable.
    #[arg(long = "field", value_name = "NAME=PATH", value_parser = records::parse_field)]
    pub fields: Vec<(records::Field, String)>,

    /// Records judged at once, 1 to 65536.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = super::in_flight())]
    pub concurrency: usize,

    /// Seed for sampled calls, recorded in the trace.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,

    /// Agent configs and prompt templates.
    #[command(flatten)]
    pub dirs: super::models::AgentDirs,

    /// Server, key, timeout and retries for `openai:` models.
    #[command(flatten)]
    pub server: super::models::ServerArgs,

    /// Print the calibration file's JSON as the summary.
    #[arg(long)]
    pub json: bool,
}

/// The longest claim judged, in characters.
const MAX_CLAIM_CHARS: usize = 20_000;

pub(super) async fn run(home: &Home, args: CalibrateArgs) -> anyhow::Result<()> {
    let mut agents = args.dirs.load()?;
    // Fitted on raw label probabilities, whatever judge.toml says.
    agents.judge.calibration = None;
    let mut options = recheck::orchestrator::agent_options(agents, None, &Default::default(), &|spec| {
        args.server.open(home, spec).map_err(super::ask::library)
    })?;
    options.loop_options.seed = args.seed;
    options.verify = VerifyOptions {
        claims: ClaimUnit::Whole,
        citation_quality: false,
        calibration: Calibration::None,
        ..Default::default()
    };
    let model = args.server.open(home, &args.model)?;
    let judge = options.judge_model.clone().unwrap_or_else(|| model.clone());
    if let Err(e) = calibration::check_usable(judge.as_ref()) {
        super::usage!("{e}");
    }
    let (records, format) = records::read(&args.labelled, MAX_CLAIM_CHARS, &args.fields)?;
    let golds: Vec<Option<Label>> =
        records.iter().map(|r| r.label.as_deref().and_then(calibration::gold_label)).collect();
    let unlabelled = golds.iter().filter(|g| g.is_none()).count();
    if unlabelled == records.len() {
        super::usage!(
            "{}: no record has a label this reads at {:?} (--field label=PATH names another place)",
            args.labelled.display(),
            format.label
        );
    }
    eprintln!(
        "reading {} as {} records: {} records, {} without a usable label (left out)",
        args.labelled.display(),
        format.name,
        records.len(),
        unlabelled
    );
    let store = super::open_store(home)?;
    let input = json!({ "file": args.labelled.display().to_string(), "format": format.name, "records": records.len() });
    let config = recheck::orchestrator::AskRecord::of(&options, recheck::llm::identity(model.as_ref()));
    let group = store.create_run(run_kind::CALIBRATE, input, json!(config), None).await?.id;
    // Only labelled records are judged (slot i is the i-th of them).
    let (labelled, golds): (Vec<records::Record>, Vec<Label>) =
        records.into_iter().zip(golds).filter_map(|(r, g)| Some((r, g?))).unzip();
    let judged = labelled.len();
    let mut rows = Vec::with_capacity(judged);
    let with = super::verify::Verifier { store: &store, model, options: &options, concurrency: args.concurrency };
    let emit = |row: Value| {
        rows.push(row);
        Ok(String::from("-"))
    };
    let total = Some(judged as u64);
    let none = std::collections::HashMap::new();
    super::verify::verify_records(with, labelled.into_iter().map(Ok), group, &none, total, emit, "judging").await?;
    let samples: Vec<(LabelLogprobs, Label)> = rows
        .iter()
        .zip(golds)
        .filter_map(|(row, gold)| {
            Some((serde_json::from_value(row["claims"][0]["label_logprobs"].clone()).ok()?, gold))
        })
        .collect();
    let failed = judged - samples.len();
    let Some(fit) = calibration::fit(&samples) else {
        store.finish_run(group, RunStatus::Failed, None, Some("no record was judged".into())).await?;
        anyhow::bail!("none of the {judged} labelled records was judged with label probabilities (run {group})");
    };
    let file = CalibrationFile {
        calibration: Calibration::Offsets { offsets: fit.offsets },
        judge_model: judge.info().spec,
        labelled: args.labelled.display().to_string(),
        fit,
    };
    store.finish_run(group, RunStatus::Completed, Some(json!(file)), None).await?;
    let text = serde_json::to_string_pretty(&file)?;
    recheck::trace::write_output(&args.out, |w| writeln!(w, "{text}"))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.out.display()))?;
    if args.json {
        return super::print_json(&json!(file));
    }
    let f = &file.fit;
    eprintln!(
        "fitted on {} judgements (gold true {}, false {}, unknown {}; {failed} not judged): balanced accuracy \
         {:.3} raw, {:.3} with {} (run {group})",
        f.records,
        f.gold[0],
        f.gold[1],
        f.gold[2],
        f.balanced_accuracy_raw,
        f.balanced_accuracy_fitted,
        file.calibration.describe()
    );
    Ok(())
}
