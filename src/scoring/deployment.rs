//! Deployment: has the account done the basic set-up the product needs to work at all?

use serde::{Deserialize, Serialize};

use super::facts::AccountFacts;
use super::receipt::MeasureResult;
use super::types::Colour;

/// What the deployment verdict was based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentInputs {
    pub basic_setup_done: Option<bool>,
}

/// Yes: GREEN. No: RED. Unknown: N/A, because a CRM that never recorded the set-up says
/// nothing about the customer.
pub(super) fn judge(facts: &AccountFacts) -> MeasureResult<DeploymentInputs> {
    let (colour, reason) = match facts.basic_setup_done {
        Some(true) => (Colour::Green, "basic set-up done"),
        Some(false) => (Colour::Red, "basic set-up not done"),
        None => (Colour::Na, "set-up status unknown"),
    };
    let inputs = DeploymentInputs {
        basic_setup_done: facts.basic_setup_done,
    };
    MeasureResult::new(colour, reason, inputs)
}
