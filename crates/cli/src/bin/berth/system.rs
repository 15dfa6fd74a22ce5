//! `berth system`: host-wide upkeep.

use crate::container::engine;
use crate::Cli;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SystemCommand {
    /// After a reboot (run it at boot) or a killed monitor: record orphaned containers
    /// as exited and start those whose restart policy says so.
    Recover,
}

pub fn system(cli: &Cli, c: &SystemCommand) -> Result<i32> {
    match c {
        SystemCommand::Recover => {
            for name in engine(cli)?.recover()? {
                println!("{name}");
            }
            Ok(0)
        }
    }
}
