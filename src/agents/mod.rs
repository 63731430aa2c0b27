//! Agents. For now the tool-checker and its claim extraction; the solver, critic and
//! citation-attributor come with the verify-and-revise strategies.

pub mod claims;
pub mod tool_checker;

pub use claims::{extract_claims, Claim, ClaimKind};
pub use tool_checker::{check_answer, CheckedClaim, Verdict};
