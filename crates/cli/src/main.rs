//! The `tessera` binary: parses arguments and hands over to the library.

use clap::Parser;

// mimalloc instead of glibc's malloc: a refresh allocates and frees a few hundred small buffers,
// and glibc's bins and consolidation took about a tenth of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = tessera::Cli::parse();
    match tessera::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
