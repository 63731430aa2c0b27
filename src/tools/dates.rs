//! Calendar arithmetic: days between dates, adding days, weekdays (proleptic Gregorian).

use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{json, Value};

use super::{arg_str, Tool, ToolError};

/// `dates`: `{"op": "diff", "from", "to"}`, `{"op": "add", "date", "days"}`,
/// `{"op": "weekday", "date"}`; dates as YYYY-MM-DD.
#[derive(Debug, Default)]
pub struct Dates;

fn date(input: &Value, key: &str) -> Result<NaiveDate, ToolError> {
    let s = arg_str(input, "dates", key)?;
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|e| ToolError::BadInput {
        tool: "dates".into(),
        detail: format!("{key} {s:?} is not YYYY-MM-DD: {e}"),
    })
}

impl Tool for Dates {
    fn name(&self) -> &str {
        "dates"
    }

    fn description(&self) -> &str {
        "Days between two dates, a date plus N days, or the weekday of a date."
    }

    fn input_schema(&self) -> Value {
        json!({"type": "object", "required": ["op"], "properties": {
            "op": {"enum": ["diff", "add", "weekday"]}, "from": {"type": "string"}, "to": {"type": "string"},
            "date": {"type": "string"}, "days": {"type": "integer"}}})
    }

    fn call(&self, input: &Value) -> Result<Value, ToolError> {
        let bad = |detail: String| ToolError::BadInput { tool: "dates".into(), detail };
        match arg_str(input, "dates", "op")? {
            "diff" => {
                let (a, b) = (date(input, "from")?, date(input, "to")?);
                Ok(json!({"days": (b - a).num_days()}))
            }
            "add" => {
                let d = date(input, "date")?;
                let n =
                    input.get("days").and_then(Value::as_i64).ok_or_else(|| bad("`days` must be an integer".into()))?;
                let out = Duration::try_days(n)
                    .and_then(|dur| d.checked_add_signed(dur))
                    .ok_or_else(|| bad(format!("{d} + {n} days is out of range")))?;
                Ok(json!({"date": out.to_string(), "weekday": out.weekday().to_string()}))
            }
            "weekday" => {
                let d = date(input, "date")?;
                Ok(json!({"weekday": d.weekday().to_string()}))
            }
            other => Err(bad(format!("unknown op {other:?} (diff, add, weekday)"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_arithmetic() {
        assert_eq!(Dates.call(&json!({"op": "diff", "from": "2015-07-14", "to": "2019-01-01"})).unwrap()["days"], 1267);
        let out = Dates.call(&json!({"op": "add", "date": "2024-02-28", "days": 1})).unwrap();
        assert_eq!(out["date"], "2024-02-29");
        assert_eq!(Dates.call(&json!({"op": "weekday", "date": "1969-07-20"})).unwrap()["weekday"], "Sun");
        assert!(Dates.call(&json!({"op": "weekday", "date": "2023-02-30"})).is_err());
    }
}
