//! `vpnctl --help` and every subcommand's: each command and flag says what it does,
//! and the commands the texts name exist.

use clap::CommandFactory as _;

#[test]
fn every_command_and_flag_is_described() {
    let problems = vpnctl_daemon::help::problems(vpnctl_tui::Config::command());
    assert!(problems.is_empty(), "{problems:#?}");
}
