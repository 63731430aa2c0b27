//! The orchestrator: strategies that run the agents over a question, record every
//! step of the run, and return the verified, cited answer.

mod outcome;
mod run;
mod strategy;

pub use outcome::{AskOutcome, ClaimReport, Evidence, Round, Verification};
pub use run::{ask, AskOptions};
pub use strategy::{LoopOptions, Strategy};
