//! The overall score: a weighted mean of the measures' points, with N/A measures left out and
//! the remaining weights renormalised, in exact integer arithmetic.
//!
//! Floats are avoided on purpose: a score is written to the CRM, compared across runs and
//! turned into tasks, so 62.5 must round to 63 on every machine, every time.

use serde::{Deserialize, Serialize};

use super::config::{Bands, Points, ScoringConfig};
use super::types::{Colour, PerMeasure, Score};

/// How the overall score came about, for the receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overall {
    pub parts: PerMeasure<Part>,
    /// The points scale and bands applied.
    pub points: Points,
    pub bands: Bands,
    pub min_measures: u8,
    /// Measures with data (not N/A).
    pub measured: u8,
    /// The sum of the measured measures' weights: the denominator after renormalisation.
    pub weight_used: u64,
    /// E.g. `(100×25 + 50×25 + 0×25) / 75 = 50`; `None` when the score is N/A.
    pub arithmetic: Option<String>,
    pub score: Option<Score>,
    pub band: Colour,
    /// Which measures counted, or why there is no score.
    pub reason: String,
}

/// One measure's part in the score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub colour: Colour,
    /// The configured weight.
    pub weight: u32,
    /// `None` when the measure is N/A and left out.
    pub points: Option<u8>,
    /// The weight's share after renormalisation, for display (e.g. `33.3%`); `None` when left
    /// out or when there is no score.
    pub share: Option<String>,
}

/// A measure with data: its points and weight, widened for the arithmetic.
#[derive(Debug, Clone, Copy)]
struct Term {
    points: u64,
    weight: u64,
}

/// Combines the four colours into a score and band.
pub(super) fn combine(colours: PerMeasure<Colour>, config: &ScoringConfig) -> Overall {
    let terms = terms(&colours, config);
    let measured = u8::try_from(terms.len()).unwrap_or(u8::MAX);
    let weight_used: u64 = terms.iter().map(|t| t.weight).sum();
    let numerator: u64 = terms.iter().map(|t| t.points * t.weight).sum();

    let scored = measured >= config.min_measures() && weight_used > 0;
    let score = scored.then(|| Score::clamped(round_half_up(numerator, weight_used)));
    let arithmetic = scored.then(|| arithmetic(&terms, numerator, weight_used));

    Overall {
        reason: reason(&colours, measured, weight_used, config.min_measures()),
        parts: parts(&colours, config, scored.then_some(weight_used)),
        points: config.points(),
        bands: config.bands(),
        min_measures: config.min_measures(),
        measured,
        weight_used,
        arithmetic,
        score,
        band: config.bands().of(score),
    }
}

/// The measures with data, in framework order.
fn terms(colours: &PerMeasure<Colour>, config: &ScoringConfig) -> Vec<Term> {
    colours
        .entries()
        .into_iter()
        .filter_map(|(measure, &colour)| {
            let points = config.points().of(colour)?;
            Some(Term {
                points: u64::from(points),
                weight: u64::from(config.weight(measure)),
            })
        })
        .collect()
}

/// Each measure's part; shares are given only when there is a score to share out.
fn parts(
    colours: &PerMeasure<Colour>,
    config: &ScoringConfig,
    weight_used: Option<u64>,
) -> PerMeasure<Part> {
    PerMeasure::from_fn(|measure| {
        let colour = *colours.get(measure);
        let weight = config.weight(measure);
        let share = weight_used
            .filter(|_| colour.is_measured())
            .map(|total| percent(weight, total));
        Part {
            colour,
            weight,
            points: config.points().of(colour),
            share,
        }
    })
}

/// `numerator / denominator` rounded to the nearest integer, halves up. Needs denominator > 0.
fn round_half_up(numerator: u64, denominator: u64) -> u64 {
    (2 * numerator + denominator) / (2 * denominator)
}

fn arithmetic(terms: &[Term], numerator: u64, denominator: u64) -> String {
    let terms: Vec<String> = terms
        .iter()
        .map(|t| format!("{}×{}", t.points, t.weight))
        .collect();
    let quotient = decimal(numerator, denominator);
    let rounded = round_half_up(numerator, denominator);
    let result = if numerator.is_multiple_of(denominator) {
        quotient
    } else {
        format!("{quotient} → {rounded}")
    };
    format!("({}) / {denominator} = {result}", terms.join(" + "))
}

/// The quotient with up to two decimals: exact when they suffice (`62.5`), otherwise
/// truncated and marked with `…` (`83.33…`). Truncating never misleads about rounding: the
/// shown digits are at least x.50 exactly when the true value is.
fn decimal(numerator: u64, denominator: u64) -> String {
    let whole = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder == 0 {
        return whole.to_string();
    }
    let hundredths = remainder * 100 / denominator;
    let exact = (remainder * 100).is_multiple_of(denominator);
    let digits = format!("{hundredths:02}");
    if exact {
        format!("{whole}.{}", digits.trim_end_matches('0'))
    } else {
        format!("{whole}.{digits}…")
    }
}

/// A share in percent with one decimal, rounded half up (display only).
fn percent(weight: u32, total: u64) -> String {
    let tenths = round_half_up(u64::from(weight) * 1000, total);
    format!("{}.{}%", tenths / 10, tenths % 10)
}

fn reason(colours: &PerMeasure<Colour>, measured: u8, weight_used: u64, needed: u8) -> String {
    if measured < needed {
        let noun = if measured == 1 { "measure" } else { "measures" };
        return format!("no score: {measured} {noun} with data, {needed} needed");
    }
    if weight_used == 0 {
        return "no score: the measures with data all have weight 0".to_owned();
    }
    let left_out: Vec<&str> = colours
        .entries()
        .into_iter()
        .filter(|(_, colour)| !colour.is_measured())
        .map(|(measure, _)| measure.as_str())
        .collect();
    if left_out.is_empty() {
        return "all 4 measures counted".to_owned();
    }
    format!(
        "{measured} of 4 measures counted; left out as n/a: {}",
        left_out.join(", ")
    )
}
