//! The `segpack` command: parses arguments, opens files, prints. The work is
//! in the library.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use segpack::io::{Input, write_atomically};
use segpack::{ENGINE_MAX_SEGMENTS, PackOptions, PackReport, Plan};

#[derive(Parser)]
#[command(
    name = "segpack",
    version,
    about = "Pack the data segments of WebAssembly modules and components",
    long_about = "Pack the data segments of WebAssembly modules and components: the smallest \
data section that gives the same memories at instantiation.",
    after_help = "Examples:\n  segpack pack snapshot.wasm -o packed.wasm --stats\n  cat in.wasm | segpack pack > out.wasm\n  segpack inspect snapshot.wasm\n  segpack verify snapshot.wasm packed.wasm\n\nRun 'segpack help COMMAND' for a command's options and examples."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack a module or component ('-' or nothing: stdin / stdout)
    #[command(
        after_help = "Examples:\n  segpack pack in.wasm -o out.wasm --stats\n  segpack pack in.wasm -o in.wasm            # in place, atomically\n  cat in.wasm | segpack pack > out.wasm\n  segpack pack --max-segments 100000 in.wasm -o out.wasm\n\n\
A progress bar is drawn on stderr when it is a terminal and the input is at least 64 MiB \
(SEGPACK_PROGRESS_MIN_BYTES=N changes that size); never into a pipe, and not with --quiet."
    )]
    Pack(PackArgs),
    /// Show what packing would save, without writing anything
    #[command(
        after_help = "For each core module and each memory: segments, data bytes, zero and non-zero bytes \
inside segments, what packing would give, and why a memory is not packable when it is not.\n\n\
Examples:\n  segpack inspect snapshot.wasm\n  segpack inspect snapshot.wasm --json\n  segpack inspect --zero-filled-imports --max-segments 100000 app.wasm"
    )]
    Inspect(InspectArgs),
    /// Check that a packed binary gives the same memories as its original
    #[command(
        after_help = "Exits 0 when PACKED is a correct packing of ORIGINAL: the same memories at \
instantiation, and every section other than data and data count byte for byte the same; 1 with \
the first difference otherwise.\n\nExamples:\n  segpack pack in.wasm -o out.wasm && segpack verify in.wasm out.wasm\n  segpack verify --zero-filled-imports in.wasm out.wasm"
    )]
    Verify(VerifyArgs),
}

#[derive(Args)]
struct Common {
    /// The most data segments the output may have (engines reject more than 100,000)
    #[arg(long, value_name = "N", default_value_t = segpack::DEFAULT_MAX_SEGMENTS,
          value_parser = clap::value_parser!(u32).range(1..=ENGINE_MAX_SEGMENTS as i64))]
    max_segments: u32,
    /// Pack imported memories too: promise that the host hands them in zeroed
    #[arg(long)]
    zero_filled_imports: bool,
    /// Worker threads for scanning and writing (default: all cores); the output is the same for any value
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

impl Common {
    fn options(&self) -> PackOptions {
        PackOptions {
            max_segments: self.max_segments,
            zero_filled_imports: self.zero_filled_imports,
            threads: self.threads,
        }
    }
}

#[derive(Args)]
struct PackArgs {
    /// The input module or component ('-' or nothing: stdin)
    input: Option<PathBuf>,
    /// Where to write the output ('-' or nothing: stdout); may be the input itself
    #[arg(short, long, value_name = "OUTPUT")]
    output: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
    /// Print one summary line on stderr
    #[arg(long)]
    stats: bool,
    /// Print the summary as JSON on stderr
    #[arg(long)]
    json: bool,
    /// Do not print warnings or the progress bar
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args)]
struct InspectArgs {
    /// The input module or component
    input: PathBuf,
    #[command(flatten)]
    common: Common,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// The module or component before packing
    original: PathBuf,
    /// The same after packing
    packed: PathBuf,
    /// Imported memories were packed with --zero-filled-imports: compare their contents
    #[arg(long)]
    zero_filled_imports: bool,
}

/// An error and the exit status it maps to.
struct Failure {
    message: String,
    status: u8,
}

impl From<segpack::Error> for Failure {
    fn from(e: segpack::Error) -> Self {
        let status = match e.kind() {
            segpack::ErrorKind::InvalidOptions => 2,
            _ => 1,
        };
        Failure {
            message: e.to_string(),
            status,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An interrupted `pack -o FILE` must not leave its temporary file behind.
    #[cfg(unix)]
    let _ = segpack::io::remove_temporary_files_on_signals();
    let result = match cli.command {
        Command::Pack(args) => pack(args),
        Command::Inspect(args) => inspect(args),
        Command::Verify(args) => verify(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.status)
        }
    }
}

fn is_stdio(path: &Option<PathBuf>) -> bool {
    path.as_deref().is_none_or(|p| p.as_os_str() == "-")
}

fn pack(args: PackArgs) -> Result<(), Failure> {
    let to_stdout = is_stdio(&args.output);
    if to_stdout && std::io::stdout().is_terminal() {
        return Err(Failure {
            message: "refusing to write binary output to a terminal; pass -o FILE or redirect stdout (segpack pack in.wasm > out.wasm)".into(),
            status: 2,
        });
    }
    let started = Instant::now();
    let input = Input::open(args.input.as_deref())?;
    let bar = (!args.quiet && wants_progress(input.bytes().len() as u64)).then(|| {
        let bar = indicatif::ProgressBar::new_spinner()
            .with_message(format!("planning {}", input.name()));
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    });
    let planned = Plan::from_input(&input, &args.common.options());
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Err(e.into());
        }
    };
    if let Some(bar) = &bar {
        bar.disable_steady_tick();
        bar.set_message("writing");
        bar.set_length(plan.len());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        // Rate and ETA count from here, not from the start of planning.
        bar.reset();
    }
    if !args.quiet {
        for warning in plan.report().warnings() {
            match &bar {
                Some(bar) => bar.suspend(|| eprintln!("warning: {warning}")),
                None => eprintln!("warning: {warning}"),
            }
        }
    }
    let progress = |n: u64| {
        if let Some(bar) = &bar {
            bar.set_position(n);
        }
    };
    let write = |file: &std::fs::File| match &bar {
        Some(_) => plan.write_to_file_with_progress(&input, file, &progress),
        None => plan.write_to_file(&input, file),
    };
    let written = if to_stdout {
        // A duplicate of fd 1 as a File, so pipes get the threaded writer too.
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .and_then(|fd| write(&std::fs::File::from(fd)))
            .map_err(|e| segpack::Error::io("cannot write stdout", e))
    } else {
        let target = args.output.as_deref().expect("checked above");
        write_atomically(target, write)
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match written {
        Ok(()) => {}
        // The reader went away (`segpack pack x | head`): not our failure.
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let elapsed = started.elapsed().as_secs_f64();
    if args.json {
        eprintln!("{}", report_json(plan.report(), elapsed));
    } else if args.stats {
        // A component: one line per nested core module, then the totals.
        let report = plan.report();
        if report.modules.len() > 1 || report.modules.iter().any(|m| !m.path.is_empty()) {
            for m in &report.modules {
                eprintln!(
                    "  {}: segments {} -> {}, data {} -> {} ({})",
                    m.path,
                    group(m.segments_before),
                    group(m.segments_after),
                    bytes(m.data_bytes_before),
                    bytes(m.data_bytes_after),
                    percent(m.data_bytes_before, m.data_bytes_after)
                );
            }
        }
        eprintln!("{}", stats_line(report, elapsed));
    }
    Ok(())
}

/// Inputs at least this large get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

/// Whether to draw a progress bar for an input of `len` bytes: only on a
/// terminal (never into pipes or CI logs), and only for large inputs.
/// `SEGPACK_PROGRESS_MIN_BYTES` overrides the size threshold.
fn wants_progress(len: u64) -> bool {
    let min = std::env::var("SEGPACK_PROGRESS_MIN_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(PROGRESS_MIN_BYTES);
    len >= min && std::io::stderr().is_terminal()
}

/// Writes `text` to stdout; a reader that went away (`segpack inspect x |
/// head`) is not an error.
fn print(text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(segpack::Error::io("cannot write stdout", e).into()),
    }
}

fn is_broken_pipe(e: &segpack::Error) -> bool {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

fn inspect(args: InspectArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let input = Input::open(Some(&args.input))?;
    let inspection = segpack::inspect(input.bytes(), &args.common.options())?;
    let report = &inspection.report;
    let elapsed = started.elapsed().as_secs_f64();
    let mut text = String::new();
    if args.json {
        let mut json = report_json(report, elapsed);
        for (module, memories) in json["modules"]
            .as_array_mut()
            .expect("modules")
            .iter_mut()
            .zip(&inspection.memories)
        {
            module["memories"] = memories.iter().map(memory_json).collect();
        }
        return print(&format!("{json}\n"));
    }
    // One line per module (its memories after a `;`), then the total.
    for (m, memories) in report.modules.iter().zip(&inspection.memories) {
        let name = if m.path.is_empty() { "module" } else { &m.path };
        let mut line = format!(
            "{name}: segments {} -> {}, data {} -> {} ({})",
            group(m.segments_before),
            group(m.segments_after),
            bytes(m.data_bytes_before),
            bytes(m.data_bytes_after),
            percent(m.data_bytes_before, m.data_bytes_after)
        );
        for memory in memories.iter().filter(|r| r.segments > 0) {
            line.push_str("; ");
            line.push_str(&memory_line(memory));
        }
        text.push_str(&line);
        text.push('\n');
        for w in &m.warnings {
            text.push_str(&format!("  warning: {w}\n"));
        }
    }
    text.push_str(&stats_line(report, elapsed));
    text.push('\n');
    print(&text)
}

/// `memory 0 (32-bit): 1,204 segments, 4.1 MiB of data (2.8 MiB zeros,
/// 1.3 MiB non-zero) -> 37 segments, 1.3 MiB (-68%)`, sizes with headers.
fn memory_line(m: &segpack::MemoryReport) -> String {
    let kind = match (m.index_type, m.imported) {
        (segpack::IndexType::I32, false) => "32-bit",
        (segpack::IndexType::I32, true) => "32-bit, imported",
        (segpack::IndexType::I64, false) => "64-bit",
        (segpack::IndexType::I64, true) => "64-bit, imported",
    };
    let before = format!(
        "memory {} ({kind}): {}, {} of data ({} zeros, {} non-zero)",
        m.memory_index,
        plural(m.segments, "segment"),
        bytes(m.data_bytes),
        bytes(m.zero_bytes),
        bytes(m.non_zero_bytes),
    );
    match &m.not_packable {
        Some(why) => format!("{before}, not packable: {why}"),
        None => format!(
            "{before} -> {}, {} ({})",
            plural(m.packed_segments, "segment"),
            bytes(m.packed_segment_bytes),
            percent(m.segment_bytes, m.packed_segment_bytes)
        ),
    }
}

fn plural(n: u64, what: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{} {what}{s}", group(n))
}

fn memory_json(m: &segpack::MemoryReport) -> serde_json::Value {
    serde_json::json!({
        "memory": m.memory_index,
        "index_type": match m.index_type {
            segpack::IndexType::I32 => "i32",
            segpack::IndexType::I64 => "i64",
        },
        "imported": m.imported,
        "segments": m.segments,
        "data_bytes": m.data_bytes,
        "zero_bytes": m.zero_bytes,
        "non_zero_bytes": m.non_zero_bytes,
        "segment_bytes": m.segment_bytes,
        "packed_segments": m.packed_segments,
        "packed_segment_bytes": m.packed_segment_bytes,
        "packable": m.not_packable.is_none(),
        "not_packable_reason": m.not_packable,
    })
}

fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let original = Input::open(Some(&args.original))?;
    let packed = Input::open(Some(&args.packed))?;
    let options = segpack::VerifyOptions {
        zero_filled_imports: args.zero_filled_imports,
    };
    let (a, b) = (args.original.display(), args.packed.display());
    match segpack::verify(original.bytes(), packed.bytes(), &options)? {
        None => print(&format!("same: {b} gives the same memories as {a}\n")),
        Some(difference) => Err(Failure {
            message: format!("{b} is not a packing of {a}: {difference}"),
            status: 1,
        }),
    }
}

/// `segments 1,204 -> 37, data 4.1 MiB -> 1.3 MiB (-68%), 0.21 s`
fn stats_line(r: &PackReport, seconds: f64) -> String {
    format!(
        "segments {} -> {}, data {} -> {} ({}), {seconds:.2} s",
        group(r.segments_before()),
        group(r.segments_after()),
        bytes(r.data_bytes_before()),
        bytes(r.data_bytes_after()),
        percent(r.data_bytes_before(), r.data_bytes_after())
    )
}

fn report_json(r: &PackReport, seconds: f64) -> serde_json::Value {
    let modules: Vec<_> = r
        .modules
        .iter()
        .map(|m| {
            serde_json::json!({
                "path": m.path,
                "segments_before": m.segments_before,
                "segments_after": m.segments_after,
                "data_bytes_before": m.data_bytes_before,
                "data_bytes_after": m.data_bytes_after,
                "changed": m.changed,
                "unpacked_memories": m.unpacked_memories.iter().map(|(i, why)| serde_json::json!({"memory": i, "reason": why})).collect::<Vec<_>>(),
                "warnings": m.warnings,
            })
        })
        .collect();
    serde_json::json!({
        "segments_before": r.segments_before(),
        "segments_after": r.segments_after(),
        "data_bytes_before": r.data_bytes_before(),
        "data_bytes_after": r.data_bytes_after(),
        "input_bytes": r.input_len,
        "output_bytes": r.output_len,
        "changed": r.changed(),
        "seconds": seconds,
        "modules": modules,
    })
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// The change from `before` to `after`, signed: `-68%`, `+0%`, and one
/// decimal when it is under 1% either way (`-0.4%`).
fn percent(before: u64, after: u64) -> String {
    if before == after {
        return "+0%".into();
    }
    if before == 0 {
        return "+100%".into();
    }
    let change = (after as f64 - before as f64) / before as f64 * 100.0;
    if change.abs() < 0.1 {
        format!("{change:+.2}%")
    } else if change.abs() < 1.0 {
        format!("{change:+.1}%")
    } else {
        format!("{change:+.0}%")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_the_spec() {
        assert_eq!(group(1204), "1,204");
        assert_eq!(group(37), "37");
        assert_eq!(group(1_000_000), "1,000,000");
        assert_eq!(bytes(4_300_000), "4.1 MiB");
        assert_eq!(percent(100, 32), "-68%");
        assert_eq!(percent(0, 0), "+0%");
        assert_eq!(percent(1000, 996), "-0.4%");
        assert_eq!(plural(1, "segment"), "1 segment");
        assert_eq!(plural(1204, "segment"), "1,204 segments");
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
