//! How much worse than stable a canary may be: in points of ratio, or relative to stable.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Added to a relative tolerance: 1.5 × 0 % is 0 %, and no amount of clean traffic could show
/// that a canary of a service without errors is within it.
pub const RELATIVE_FLOOR: f64 = 0.001;

/// How much worse than stable the canary may be.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tolerance {
    /// In points of ratio: `0.01` is canary ≤ stable + 1 point.
    Points(f64),
    /// Relative to stable: `0.5` (written `"50%"`) is canary ≤ 1.5 × stable (+
    /// [`RELATIVE_FLOOR`]).
    Relative(f64),
}

impl Tolerance {
    /// How far above stable's `ratio` the canary may be.
    pub fn excess_over(self, stable: f64) -> f64 {
        match self {
            Tolerance::Points(d) => d,
            Tolerance::Relative(r) => r * stable.max(0.0) + RELATIVE_FLOOR,
        }
    }

    /// Whether it is a tolerance at all: points in (0, 1), or a relative share above 0.
    pub fn valid(self) -> bool {
        match self {
            Tolerance::Points(d) => d.is_finite() && d > 0.0 && d < 1.0,
            Tolerance::Relative(r) => r.is_finite() && r > 0.0 && r <= 1000.0,
        }
    }
}

impl fmt::Display for Tolerance {
    /// `stable + 1.00 pt` or `1.5 x stable + 0.10 pt`: the right-hand side of the limit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Tolerance::Points(d) => write!(f, "stable + {:.2} pt", d * 100.0),
            Tolerance::Relative(r) => write!(
                f,
                "{} x stable + {:.2} pt",
                trim(1.0 + r),
                RELATIVE_FLOOR * 100.0
            ),
        }
    }
}

/// A tolerance that is neither a ratio nor a percentage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a tolerance: give points as a ratio (0.01 = canary <= stable + 1 point) or a \
     share of stable as a percentage (\"50%\" = canary <= 1.5 x stable)"
)]
pub struct ToleranceError(pub String);

impl FromStr for Tolerance {
    type Err = ToleranceError;

    /// `"0.01"` → [`Tolerance::Points`]; `"50%"` → [`Tolerance::Relative`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ToleranceError(s.to_string());
        let t = s.trim();
        let tol = match t.strip_suffix('%') {
            Some(pct) => Tolerance::Relative(pct.trim().parse::<f64>().map_err(|_| err())? / 100.0),
            None => Tolerance::Points(t.parse::<f64>().map_err(|_| err())?),
        };
        if tol.valid() {
            Ok(tol)
        } else {
            Err(err())
        }
    }
}

/// `x` without trailing zeros: `1.5`, `2`.
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}
