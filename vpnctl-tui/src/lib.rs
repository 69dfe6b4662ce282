//! `vpnctl`: the admin's terminal dashboard, scriptable admin subcommands and the
//! zero-setup demo, all over the vpnctld HTTP API.
//!
//! - [`app`]: the dashboard's state, actions and `update` (no I/O);
//! - [`ui`]: drawing (`impl Widget for &App`), reads state only;
//! - [`runtime`]: background API tasks feeding actions over a channel, the terminal loop;
//! - [`when`]: ends of access as admins type and read them;
//! - [`configs`]: configs written to files (0600), also after an evacuation;
//! - [`cli`]: the command line (`Config`) and the non-interactive subcommands;
//! - [`demo`]: an embedded control plane with three simulated nodes (feature `demo`,
//!   on by default; without it the admin binary links no server and no node agent).

pub mod app;
pub mod cli;
pub mod configs;
#[cfg(feature = "demo")]
pub mod demo;
pub mod runtime;
pub mod ui;
pub mod when;

pub use app::{Action, App, update};
pub use cli::{Config, run};
