//! The `tokenops` binary; all of it lives in the `tokenops_cli` library.

fn main() -> std::process::ExitCode {
    tokenops_cli::main()
}
