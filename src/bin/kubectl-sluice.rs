//! `kubectl-sluice`: the kubectl plugin. kubectl runs it for `kubectl sluice ...`; it is the
//! same command line as `sluice` (see `sluice::cli`), with `kubectl sluice` in its usage.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
