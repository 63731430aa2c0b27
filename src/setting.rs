//! One named setting's value as a front end hands it over (JSON from the Python
//! package), read as the type the setting has, and the error that names it.

use std::path::PathBuf;

use serde_json::Value;

use crate::{Error, Result};

/// The most calls, records or items any setting lets run at once: more would exceed
/// what a tokio semaphore holds, and buy nothing on any machine.
pub const MAX_IN_FLIGHT: usize = 65_536;

/// Refuse a count of things in flight at once outside 1 to [`MAX_IN_FLIGHT`], naming
/// the setting that gave it.
pub fn check_in_flight(setting: &str, n: usize) -> Result<()> {
    if !(1..=MAX_IN_FLIGHT).contains(&n) {
        return Err(bad(setting, format!("must be 1 to {MAX_IN_FLIGHT}, got {n}")));
    }
    Ok(())
}

/// A refused setting.
pub(crate) fn bad(setting: &str, problem: impl Into<String>) -> Error {
    Error::BadSetting { setting: setting.to_string(), problem: problem.into() }
}

/// One named value, read as the type its setting has.
pub(crate) struct Field<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: &'a Value,
}

impl Field<'_> {
    fn wrong(&self, wanted: &str) -> Error {
        bad(self.name, format!("must be {wanted}, got {}", self.value))
    }

    pub(crate) fn text(&self) -> Result<&str> {
        self.value.as_str().ok_or_else(|| self.wrong("a string"))
    }

    /// A string naming one of a few choices (`wanted` lists them), read by `parse`.
    pub(crate) fn choice<T>(&self, parse: impl Fn(&str) -> Option<T>, wanted: &str) -> Result<T> {
        self.text().ok().and_then(parse).ok_or_else(|| self.wrong(wanted))
    }

    pub(crate) fn optional_text(&self) -> Result<Option<String>> {
        match self.value {
            Value::Null => Ok(None),
            _ => self.text().map(|s| Some(s.to_string())),
        }
    }

    pub(crate) fn path(&self) -> Result<Option<PathBuf>> {
        Ok(self.optional_text()?.map(PathBuf::from))
    }

    pub(crate) fn flag(&self) -> Result<bool> {
        self.value.as_bool().ok_or_else(|| self.wrong("true or false"))
    }

    pub(crate) fn integer<T: TryFrom<u64>>(&self) -> Result<T> {
        let n = self.value.as_u64().ok_or_else(|| self.wrong("a whole number, 0 or more"))?;
        T::try_from(n).map_err(|_| self.wrong("a smaller whole number"))
    }

    pub(crate) fn optional_integer<T: TryFrom<u64>>(&self) -> Result<Option<T>> {
        match self.value {
            Value::Null => Ok(None),
            _ => self.integer().map(Some),
        }
    }

    pub(crate) fn number<T: FromF64>(&self) -> Result<T> {
        // JSON has no NaN: a front end passes it (and the infinities) as a string.
        let n = match self.value {
            Value::String(s) if ["nan", "inf", "-inf"].contains(&s.to_ascii_lowercase().as_str()) => {
                s.parse::<f64>().map_err(|_| self.wrong("a number"))?
            }
            v => v.as_f64().ok_or_else(|| self.wrong("a number"))?,
        };
        Ok(T::from_f64(n))
    }

    pub(crate) fn optional_number<T: FromF64>(&self) -> Result<Option<T>> {
        match self.value {
            Value::Null => Ok(None),
            _ => self.number().map(Some),
        }
    }

    pub(crate) fn texts(&self) -> Result<Vec<String>> {
        let items = self.value.as_array().ok_or_else(|| self.wrong("a list of strings"))?;
        items.iter().map(|v| v.as_str().map(String::from).ok_or_else(|| self.wrong("a list of strings"))).collect()
    }
}

/// A float type a setting can have.
pub(crate) trait FromF64 {
    fn from_f64(n: f64) -> Self;
}

impl FromF64 for f32 {
    fn from_f64(n: f64) -> Self {
        n as f32
    }
}

impl FromF64 for f64 {
    fn from_f64(n: f64) -> Self {
        n
    }
}
