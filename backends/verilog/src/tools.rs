//! Running the open HDL tools (Verilator, Yosys). A missing tool is an
//! error that says how to install it; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why running an HDL tool failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not on `PATH`.
    #[error(
        "`{tool}` is not installed or not on PATH (install it with `apt-get install -y {package}`)"
    )]
    Missing {
        /// The program's name (`verilator`, `yosys`).
        tool: String,
        /// The apt package that provides it.
        package: String,
    },
    /// The program ran and exited with a failure.
    #[error("`{command}` failed in {dir} (exit {code:?}):\n{output}")]
    Failed {
        /// The command line as run.
        command: String,
        /// The working folder.
        dir: String,
        /// Exit status; `None` if a signal ended it.
        code: Option<i32>,
        /// Its stdout and stderr, combined.
        output: String,
    },
    /// A file or folder the run needs could not be read or written, or
    /// the program could not be started for a reason other than being
    /// missing.
    #[error("{path}: {source}")]
    Io {
        /// The file, folder or program.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs `program args` in `dir`; returns stdout, or an error with the
/// combined output.
pub fn run(dir: &Path, program: &str, args: &[String]) -> Result<String, ToolError> {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ToolError::Missing {
                tool: program.into(),
                package: match program {
                    "verilator" | "yosys" | "iverilog" => program.into(),
                    _ => "build-essential".into(),
                },
            },
            _ => ToolError::Io {
                path: dir.display().to_string(),
                source: e,
            },
        })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let mut output = text;
        output.push_str(&String::from_utf8_lossy(&out.stderr));
        // Keep the end: that is where tools print the reason.
        if output.len() > 8000 {
            output = format!("...{}", &output[output.len() - 8000..]);
        }
        return Err(ToolError::Failed {
            command: format!("{program} {}", args.join(" ")),
            dir: dir.display().to_string(),
            code: out.status.code(),
            output,
        });
    }
    Ok(text)
}

/// Builds a self-checking or file-writing Verilog testbench with
/// `verilator --binary` (top module `top`), in `dir/obj_<top>`, and returns
/// the executable. `sources` are paths (absolute or relative to `dir`).
pub fn verilator_binary(dir: &Path, top: &str, sources: &[PathBuf]) -> Result<PathBuf, ToolError> {
    let mdir = format!("obj_{top}");
    let mut args: Vec<String> = vec![
        "--binary".into(),
        "-Wall".into(),
        "-Wno-DECLFILENAME".into(),
        "-Wno-UNUSEDSIGNAL".into(),
        "-Wno-UNUSEDPARAM".into(),
        // Testbenches may warn; the RTL itself is held to `--lint-only -Wall`.
        "-Wno-fatal".into(),
        "--top-module".into(),
        top.into(),
        "-Mdir".into(),
        mdir.clone(),
        "-j".into(),
        "2".into(),
        "-O2".into(),
        // One translation unit: a testbench's C++ is far below
        // `sim::SINGLE_UNIT_MAX_CPP_BYTES`, where one file costs g++ about
        // half the CPU of Verilator's split files (headers parsed once).
        "-MAKEFLAGS".into(),
        "VM_PARALLEL_BUILDS=0".into(),
    ];
    args.extend(sources.iter().map(|p| p.display().to_string()));
    run(dir, "verilator", &args)?;
    Ok(dir.join(mdir).join(format!("V{top}")))
}

/// Absolute path of a file of the hand-written RTL library (`rtl/`).
pub fn rtl_lib(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rtl").join(file)
}
