//! Policy: Sluice's vocabulary ([`keys`]) and the one typed parser that the webhook, the
//! controller and the CLI share ([`settings`], with value types in [`values`], change-freeze
//! windows in [`freeze`] and the opt-in rule in [`optin`]).
//!
//! ```text
//! Deployment annotations ─┐
//! Namespace annotations  ─┼─► settings::resolve ─► Settings + where each value came from
//! sluice-policy ConfigMap ┘        (defaults fill the rest)
//! ```

pub mod freeze;
pub mod keys;
pub mod optin;
pub mod settings;
pub mod values;
