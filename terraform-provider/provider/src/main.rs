//! `terraform-provider-tokenops`: started by Terraform, it serves the
//! provider. `terraform-provider-tokenops docs [DIR]` writes the registry
//! documentation (default `terraform-provider/docs`).

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    if let Some(command) = args.next() {
        return match command.as_str() {
            "docs" => {
                let dir = args
                    .next()
                    .unwrap_or_else(|| "terraform-provider/docs".to_owned());
                match terraform_provider_tokenops::docs::write_all(std::path::Path::new(&dir)) {
                    Ok(files) => {
                        for f in files {
                            println!("wrote {}", f.display());
                        }
                        ExitCode::SUCCESS
                    }
                    Err(e) => {
                        eprintln!("terraform-provider-tokenops docs: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            other => {
                eprintln!(
                    "terraform-provider-tokenops: unknown command {other:?}\n\
                     usage: terraform-provider-tokenops            (started by Terraform)\n       \
                     terraform-provider-tokenops docs [DIR]   (write the registry docs)"
                );
                ExitCode::from(2)
            }
        };
    }
    match terraform_provider_tokenops::run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("terraform-provider-tokenops: {e}");
            ExitCode::FAILURE
        }
    }
}
