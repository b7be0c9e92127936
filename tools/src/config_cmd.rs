//! `peregrine config`: resolve the settings from `--config FILE` and flags, check them with
//! the same code the commands run (`endpoint::validate`), and print them.

use crate::config::ConfigArgs;
use crate::endpoint::{self, Use};

/// Which command the settings are checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum For {
    /// `peregrine server` (every key applies).
    Server,
    /// `peregrine client` (no metrics server, no admission of new clients).
    Client,
    /// `peregrine perf` with its in-process server.
    Perf,
}

/// Arguments of `peregrine config`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The settings to resolve.
    #[command(flatten)]
    pub settings: ConfigArgs,
    /// Print the effective settings as TOML (accepted back by --config). Without it, only
    /// validate and say so.
    #[arg(long)]
    pub print: bool,
    /// The command to check the settings for.
    #[arg(long = "for", value_enum, default_value = "server")]
    pub command: For,
}

/// Validates the settings as the command would; prints them as TOML with `--print`.
pub fn run(args: &Args) -> Result<(), String> {
    let settings = args.settings.resolve()?;
    // perf runs its in-process server with the settings too.
    let uses: &[Use] = match args.command {
        For::Server => &[Use::Server],
        For::Client => &[Use::Client],
        For::Perf => &[Use::PerfClient, Use::Server],
    };
    for usage in uses {
        endpoint::validate(&settings, *usage)?;
    }
    if args.print {
        out!("{}", settings.to_toml());
    } else {
        let name = format!("{:?}", args.command).to_lowercase();
        outln!("peregrine: settings are valid for {name} (use --print to see them)");
    }
    Ok(())
}
