//! The `segpack` command: parses arguments, opens files, prints. The work is
//! in the library.

#![deny(clippy::undocumented_unsafe_blocks)]

mod files;
// No progress bar on WASI: a stand-in that draws nothing.
#[cfg(target_os = "wasi")]
#[path = "no_progress.rs"]
mod indicatif;
mod render;
#[cfg(unix)]
mod signals;
mod svg;
mod write;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use files::Input;
use segpack::{MaxSegments, PackOptions, PackReport, Plan};

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
Examples:\n  segpack inspect snapshot.wasm\n  segpack inspect snapshot.wasm --json\n  segpack inspect --svg snapshot.wasm > map.svg\n  segpack inspect --zero-filled-imports --max-segments 100000 app.wasm"
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
    #[arg(long, value_name = "N", default_value_t = MaxSegments::DEFAULT,
          value_parser = clap::value_parser!(u32)
              .range(1..=i64::from(MaxSegments::ENGINE_LIMIT.get()))
              .try_map(|n| MaxSegments::new(n).ok_or("out of range")))]
    max_segments: MaxSegments,
    /// Pack imported memories too: promise that the host hands them in zeroed
    #[arg(long)]
    zero_filled_imports: bool,
    /// Worker threads for validating, scanning, compressing (--optimize-for) and writing (default: all cores); the output is the same for any value
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
}

impl Common {
    fn options(&self) -> PackOptions {
        PackOptions::default()
            .with_max_segments(self.max_segments)
            .with_zero_filled_imports(self.zero_filled_imports)
            .with_threads(self.threads)
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
    /// Make the file smallest once compressed with this codec (raw: the data section itself);
    /// never larger compressed than the input
    #[arg(long, value_name = "raw|gzip|brotli|zstd[:LEVEL]", default_value = "raw",
          value_parser = parse_objective)]
    optimize_for: Objective,
    /// Print a summary on stderr (the totals on its last line)
    #[arg(long)]
    stats: bool,
    /// Print the summary as JSON on stderr
    #[arg(long)]
    json: bool,
    /// Do not print warnings or the progress bar
    #[arg(long, short)]
    quiet: bool,
    /// Sync the output to disk before it replaces the target, and its directory after (always done in place)
    #[arg(long)]
    sync: bool,
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
    /// Print the memory map as SVG instead of text: per memory, where its non-zero bytes lie
    /// and its segments before and after packing
    #[arg(long, conflicts_with_all = ["json", "compressed"])]
    svg: bool,
    /// Also show the file compressed with this codec: the default pack and the pack --optimize-for it
    #[arg(long, value_name = "gzip|brotli|zstd[:LEVEL]", value_parser = parse_compression)]
    compressed: Option<segpack::Compression>,
}

/// What `pack` makes smallest.
#[derive(Clone, Copy)]
enum Objective {
    /// The data section (the default).
    Raw,
    /// The file once compressed.
    Compressed(segpack::Compression),
}

fn parse_objective(s: &str) -> Result<Objective, String> {
    if s == "raw" {
        return Ok(Objective::Raw);
    }
    parse_compression(s).map(Objective::Compressed)
}

fn parse_compression(s: &str) -> Result<segpack::Compression, String> {
    let c: segpack::Compression = s
        .parse()
        .map_err(|e: segpack::Error| e.message().to_string())?;
    if !c.codec.is_available() {
        // Said before any work, in the words the library uses.
        let e = c.compressed_len(0, &mut std::iter::empty()).err();
        return Err(e.map_or_else(|| format!("no {}", c.codec), |e| e.message().to_string()));
    }
    Ok(c)
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
        Failure {
            message: e.to_string(),
            status: 1,
        }
    }
}

/// A failure reading the input `name`: the library's error, with the name in
/// front when the input is not WebAssembly at all (the library knows no file
/// names).
fn input_failure(e: segpack::Error, name: &str) -> Failure {
    match render::not_wasm(e.message(), e.offset(), name) {
        Some(message) => Failure { message, status: 1 },
        None => e.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // An interrupted `pack -o FILE` must not leave its temporary file behind.
    #[cfg(unix)]
    let _ = signals::remove_temporary_files_on_signals();
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
    if to_stdout && input.is_stdout() {
        return Err(same_file_failure(&input));
    }
    // A fault on this map (someone truncated the file) removes our output.
    #[cfg(unix)]
    signals::input_fault::watch(input.bytes());
    let bar = (!args.quiet && wants_progress(input.bytes().len() as u64)).then(|| {
        let bar = indicatif::ProgressBar::new_spinner()
            .with_message(format!("planning {}", input.name()));
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    });
    let mut compressed = None;
    let planned = match args.optimize_for {
        // The report's line on the engine limit comes from the same pass.
        Objective::Raw => Plan::with_mapped(
            input.bytes(),
            &args
                .common
                .options()
                .with_report_engine_limit(args.json || args.stats),
            &input,
        ),
        Objective::Compressed(c) => {
            segpack::optimize_with_mapped(input.bytes(), &args.common.options(), c, &input).map(
                |o| {
                    compressed = Some(render::Compressed {
                        compression: c,
                        before: o.compressed_before,
                        after: o.compressed_after,
                        candidates: o.candidates.clone(),
                        measured: o.measured.clone(),
                        bytes_compressed: o.bytes_compressed,
                    });
                    o.plan
                },
            )
        }
    };
    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Err(input_failure(e, input.name()));
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
                Some(bar) => bar.suspend(|| eprintln!("warning: {}", render::warning(&warning))),
                None => eprintln!("warning: {}", render::warning(&warning)),
            }
        }
    }
    let progress = |n: u64| {
        if let Some(bar) = &bar {
            bar.set_position(n);
        }
    };
    let threads = segpack::pool::thread_count(args.common.threads);
    let progress: Option<&(dyn Fn(u64) + Sync)> = bar.as_ref().map(|_| &progress as _);
    let write = |file: &std::fs::File, durability| {
        write::write_plan(&plan, &input, file, durability, threads, progress)
    };
    let written = if to_stdout {
        let durability = files::Durability::of(false, args.sync);
        write::to_stdout(|file| {
            write(file, files::Durability::Unsynced)?;
            files::sync_stdout(file, durability)
        })
        .map_err(|e| segpack::Error::io("cannot write stdout", e))
    } else {
        let target = args.output.as_deref().expect("checked above");
        // Only an output that replaces the input puts the user's data at
        // risk in a crash: that one is synced, others only with --sync.
        let durability = files::Durability::of(input.is_file_at(target), args.sync);
        files::write_atomically(target, durability, write)
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
    if args.json || args.stats {
        let capped = capped(&args.common.options(), plan.report());
        if args.json {
            let mut json = render::report_json(plan.report(), capped.as_ref(), elapsed);
            if let Some(c) = &compressed {
                json["compressed"] = render::compressed_json(c);
            }
            eprintln!("{json}");
        } else {
            let mut text = render::stats_text(plan.report(), capped.as_ref(), elapsed);
            if let Some(c) = &compressed {
                // Before the totals, which stay the last line.
                let at = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
                text.insert_str(at, &format!("{}\n", render::compressed_line(c)));
            }
            eprint!("{text}");
        }
    }
    Ok(())
}

/// Standard output is the input's own file: refused, as `cat` refuses it,
/// before anything is written. With `>` the shell emptied the file before
/// segpack started, which is why the input looks empty: say so.
fn same_file_failure(input: &Input) -> Failure {
    let what = if input.bytes().is_empty() {
        "; the shell's '>' emptied it before segpack started"
    } else {
        ""
    };
    Failure {
        message: format!(
            "input file is output file: standard output is {} itself{what}; write to another \
             file, or pack in place with -o (segpack pack in.wasm -o in.wasm)",
            match input.name() {
                "<stdin>" => "the file on standard input",
                name => name,
            }
        ),
        status: 1,
    }
}

/// What packing gives at the engine limit, when the user's cap (below it) is
/// what held packing back: a module ended with as many segments as the cap
/// allows (or more: the input was kept because meeting the cap would not
/// pay, or could not be met). The plan worked it out in the same pass
/// ([`PackOptions::report_engine_limit`]); `None` when it was not asked to
/// (`--optimize-for`, whose report says what each cap gives compressed).
fn capped(options: &PackOptions, report: &PackReport) -> Option<render::Capped> {
    let cap = options.max_segments;
    let binds = report
        .modules
        .iter()
        .any(|m| m.segments_after >= u64::from(cap.get()));
    if cap >= MaxSegments::ENGINE_LIMIT || !binds {
        return None;
    }
    Some(render::Capped {
        cap: cap.get(),
        at_engine_limit: report.at_engine_limit()?,
    })
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
    len >= min && std::io::stderr().is_terminal() && cfg!(not(target_os = "wasi"))
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
    if args.svg {
        let maps = segpack::memory_maps(input.bytes(), &args.common.options(), svg::COLUMNS)
            .map_err(|e| input_failure(e, input.name()))?;
        return print(&svg::memory_map(input.name(), &maps));
    }
    let options = args.common.options().with_report_engine_limit(true);
    let inspection = segpack::inspect_with_mapped(input.bytes(), &options, &input)
        .map_err(|e| input_failure(e, input.name()))?;
    let compressed = match args.compressed {
        Some(c) => Some(
            inspect_compressed(&input, &options, c).map_err(|e| input_failure(e, input.name()))?,
        ),
        None => None,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let capped = capped(&options, &inspection.report);
    let text = if args.json {
        let mut json = render::inspect_json(&inspection, capped.as_ref(), elapsed);
        if let Some(c) = &compressed {
            json["compressed"] = render::inspect_compressed_json(c);
        }
        format!("{json}\n")
    } else {
        let mut text = render::inspect_text(&inspection, capped.as_ref(), elapsed);
        if let Some(c) = &compressed {
            let at = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
            text.insert_str(at, &render::inspect_compressed_text(c));
        }
        text
    };
    print(&text)
}

/// `inspect --compressed`: the input, the default pack and the optimized
/// pack, each compressed whole.
fn inspect_compressed(
    input: &Input,
    options: &PackOptions,
    compression: segpack::Compression,
) -> Result<render::InspectCompressed, segpack::Error> {
    // Compressed as they are walked, the input released behind the codec:
    // nothing the size of the input is held.
    let plan = Plan::with_mapped(input.bytes(), options, input)?;
    let default = if plan.report().changed() {
        plan.compressed_len(compression, &|bytes| input.release(bytes))?
    } else {
        u64::MAX
    };
    let optimized = segpack::optimize_with_mapped(input.bytes(), options, compression, input)?;
    let default = if default == u64::MAX {
        optimized.compressed_before
    } else {
        default
    };
    Ok(render::InspectCompressed {
        compression,
        input: optimized.compressed_before,
        default: (plan.len(), default),
        optimized: (optimized.plan.len(), optimized.compressed_after),
    })
}

fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let original = Input::open(Some(&args.original))?;
    let packed = Input::open(Some(&args.packed))?;
    let options =
        segpack::VerifyOptions::default().with_zero_filled_imports(args.zero_filled_imports);
    let (a, b) = (args.original.display(), args.packed.display());
    // The library says which side; the file's name goes after that, as
    // `pack` and `inspect` put it in front.
    let not_wasm = |e: segpack::Error| {
        let sides = [
            ("in the original: ", a.to_string()),
            ("in the packed binary: ", b.to_string()),
        ];
        for (context, name) in sides {
            if let Some(message) = e.message().strip_prefix(context)
                && let Some(message) = render::not_wasm(message, e.offset(), &name)
            {
                return Failure {
                    message: format!("{context}{message}"),
                    status: 1,
                };
            }
        }
        Failure::from(e)
    };
    match segpack::verify(original.bytes(), packed.bytes(), &options).map_err(not_wasm)? {
        None => print(&format!("same: {b} gives the same memories as {a}\n")),
        Some(difference) => Err(Failure {
            message: format!(
                "{b} is not a packing of {a}: {}",
                render::difference(&difference.to_string())
            ),
            status: 1,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
