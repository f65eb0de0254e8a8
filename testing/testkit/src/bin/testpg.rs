//! `tokenops-testpg start DIR` starts a throw-away PostgreSQL in DIR and prints
//! its admin URL; `tokenops-testpg stop DIR` stops it. The test script uses it
//! to share one cluster among all test processes.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [cmd, dir] if cmd == "start" => {
            tokenops_testkit::PgCluster::start_in(&PathBuf::from(dir), true)
                .map(|c| println!("{}", c.keep_running().admin_url()))
        }
        [cmd, dir] if cmd == "stop" => tokenops_testkit::PgCluster::stop_in(&PathBuf::from(dir)),
        _ => {
            eprintln!("usage: tokenops-testpg start|stop DIR");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
