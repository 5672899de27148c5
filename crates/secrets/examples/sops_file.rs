//! A minimal `sops encrypt` / `sops decrypt` on top of capstan-secrets, for timing the library
//! against other tools from the command line (`benches/compare-rops.sh`).
//!
//! ```text
//! sops_file encrypt <file> <age1…recipient>   # the encrypted file on stdout
//! sops_file decrypt <file>                    # identities found the sops way
//! sops_file keygen                            # a new age key file on stdout
//! ```

#![allow(
    clippy::disallowed_methods,
    reason = "an example program prints its result"
)]

use capstan_secrets::{
    EncryptOptions, Format, Identities, Identity, Recipient, Recipients, SopsFile,
};
use std::{io::Write as _, path::PathBuf, process::ExitCode};

fn run(args: &[String]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    match args {
        [command, file, recipient] if command == "encrypt" => {
            let path = PathBuf::from(file);
            let options = EncryptOptions {
                recipients: Recipients::any_of([recipient.parse::<Recipient>()?]),
                ..EncryptOptions::default()
            };
            let plaintext = std::fs::read(&path)?;
            Ok(
                SopsFile::encrypt(&path, Format::from_path(&path), &plaintext, &options)?
                    .to_bytes(),
            )
        }
        [command, file] if command == "decrypt" => {
            let decrypted = SopsFile::read(file)?.decrypt(&Identities::from_env()?)?;
            Ok(decrypted.to_plaintext().to_vec())
        }
        [command] if command == "keygen" => Ok(Identity::generate()
            .to_key_file("1970-01-01T00:00:00Z")
            .as_bytes()
            .to_vec()),
        _ => Err("usage: sops_file encrypt <file> <recipient> | decrypt <file> | keygen".into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(output) => {
            let _ = std::io::stdout().write_all(&output);
            ExitCode::SUCCESS
        }
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "error: {error}");
            ExitCode::FAILURE
        }
    }
}
