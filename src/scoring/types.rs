//! The small value types every part of scoring speaks: colours, scores and measure names.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The verdict of one measure or of the whole card. `Na` means "not enough data to judge",
/// which is different from RED: an N/A measure is left out of the score instead of counting
/// as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    Green,
    Yellow,
    Red,
    Na,
}

impl Colour {
    /// The colour named as [`Colour::as_str`] names it.
    pub fn parse(name: &str) -> Option<Colour> {
        [Colour::Green, Colour::Yellow, Colour::Red, Colour::Na]
            .into_iter()
            .find(|colour| colour.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
            Colour::Na => "na",
        }
    }

    /// Orders the judged colours (RED 0 < YELLOW 1 < GREEN 2); N/A has no rank because it is
    /// not better or worse than anything, only absent.
    pub fn rank(self) -> Option<u8> {
        match self {
            Colour::Red => Some(0),
            Colour::Yellow => Some(1),
            Colour::Green => Some(2),
            Colour::Na => None,
        }
    }

    pub fn is_measured(self) -> bool {
        self != Colour::Na
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An overall health score, an integer from 0 to 100. The constructor is the only way in, so
/// a score outside that range cannot exist anywhere downstream (store, CRM write, tasks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct Score(u8);

impl Score {
    pub const MAX: u8 = 100;

    pub fn new(value: u8) -> Option<Score> {
        (value <= Self::MAX).then_some(Score(value))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// For arithmetic that is in range by construction (a weighted mean of points that are
    /// each at most 100): clamping means a slip can never produce an invalid score.
    pub(crate) fn clamped(value: u64) -> Score {
        Score(u8::try_from(value.min(u64::from(Self::MAX))).unwrap_or(Self::MAX))
    }
}

impl TryFrom<u8> for Score {
    type Error = String;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Score::new(value).ok_or_else(|| format!("score {value} is above {}", Self::MAX))
    }
}

impl From<Score> for u8 {
    fn from(score: Score) -> u8 {
        score.0
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The four measures of D.E.A.R., in the order the framework names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    Deployment,
    Engagement,
    Adoption,
    Roi,
}

impl Measure {
    pub const ALL: [Measure; 4] = [
        Measure::Deployment,
        Measure::Engagement,
        Measure::Adoption,
        Measure::Roi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Deployment => "deployment",
            Measure::Engagement => "engagement",
            Measure::Adoption => "adoption",
            Measure::Roi => "roi",
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One value per measure. It serialises as `{"deployment": .., "engagement": .., "adoption":
/// .., "roi": ..}`, which for colours is exactly the `measures` object of the contract's
/// `PUT /v1/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PerMeasure<T> {
    pub deployment: T,
    pub engagement: T,
    pub adoption: T,
    pub roi: T,
}

impl<T> PerMeasure<T> {
    pub fn get(&self, measure: Measure) -> &T {
        match measure {
            Measure::Deployment => &self.deployment,
            Measure::Engagement => &self.engagement,
            Measure::Adoption => &self.adoption,
            Measure::Roi => &self.roi,
        }
    }

    /// Builds a value per measure from a function of the measure.
    pub fn from_fn(mut f: impl FnMut(Measure) -> T) -> Self {
        PerMeasure {
            deployment: f(Measure::Deployment),
            engagement: f(Measure::Engagement),
            adoption: f(Measure::Adoption),
            roi: f(Measure::Roi),
        }
    }

    /// The four values paired with their measure, in framework order.
    pub fn entries(&self) -> [(Measure, &T); 4] {
        Measure::ALL.map(|measure| (measure, self.get(measure)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_accepts_0_to_100_only() {
        assert_eq!(Score::new(0).map(Score::get), Some(0));
        assert_eq!(Score::new(100).map(Score::get), Some(100));
        assert_eq!(Score::new(101), None);
        assert!(serde_json::from_str::<Score>("101").is_err());
        assert_eq!(serde_json::from_str::<Score>("42").ok(), Score::new(42));
    }

    #[test]
    fn colours_serialise_lowercase() {
        let colours = PerMeasure {
            deployment: Colour::Green,
            engagement: Colour::Yellow,
            adoption: Colour::Red,
            roi: Colour::Na,
        };
        let json = serde_json::to_string(&colours).unwrap();
        let expected =
            r#"{"deployment":"green","engagement":"yellow","adoption":"red","roi":"na"}"#;
        assert_eq!(json, expected);
    }

    #[test]
    fn colour_rank_orders_red_below_yellow_below_green() {
        assert!(Colour::Red.rank() < Colour::Yellow.rank());
        assert!(Colour::Yellow.rank() < Colour::Green.rank());
        assert_eq!(Colour::Na.rank(), None);
    }
}
