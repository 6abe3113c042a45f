//! The node's configuration: one serde struct holding each subsystem's settings. Layers, later
//! wins: embedded defaults, a TOML file, `KNOOP_*` environment variables (`__` separates
//! sections: `KNOOP_RPC__LISTEN`), command-line flags. `validate` names the field at fault.
//!
//! [`settings`] holds the structs and their defaults, [`load`] the layering and `validate`.

mod load;
mod settings;

pub use load::*;
pub use settings::*;
