//! `peregrine config`: resolve the settings from `--config FILE` and flags and print them.

use crate::config::ConfigArgs;

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
}

/// Validates the settings; prints them as TOML with `--print`.
pub fn run(args: &Args) -> Result<(), String> {
    let settings = args.settings.resolve()?;
    if args.print {
        out!("{}", settings.to_toml());
    } else {
        outln!("peregrine: settings are valid (use --print to see them)");
    }
    Ok(())
}
