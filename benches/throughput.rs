//! Scanning and merging throughput through the public API (plain harness, no
//! criterion: it builds in seconds).
//!
//! ```text
//! cargo bench --bench throughput                 # everything
//! cargo bench --bench throughput -- snapshot     # only cases whose name contains "snapshot"
//! SEGPACK_BENCH_MIB=1024 cargo bench --bench throughput
//! ```
//!
//! Cases, each timed as the minimum over repeated runs (at least 3, and until
//! about `SEGPACK_BENCH_SECS` seconds, default 1, were spent), reported as
//! input MB/s (10^6 bytes of input per second):
//!
//! * `plan`: [`segpack::Plan::new`], parse, scan and decide every output byte;
//! * `pack`: [`segpack::pack_module`] into [`std::io::sink`], plan and write;
//! * `segments`: [`segpack::pack_segments`] on the snapshot's segments (the
//!   producer API: scanning and merging only, no parsing, no output);
//! * `packer`: [`segpack::Packer`] on the snapshot's memory as one slice, as
//!   Wizer hands it in (the whole memory, zero pages included);
//!
//! with `--threads 1` (`t1`) and all cores (`tN`), on the modules of the
//! corpus (`../shared/corpus` or `$SEGPACK_CORPUS`) and on a naive snapshot
//! made here: a memory of `SEGPACK_BENCH_MIB` MiB (default 256), one data
//! segment per used 64 KiB page, about 30% of pages used, zero-heavy
//! pseudo-random heap content (objects separated by zero gaps).
//!
//! On Linux, `t1` lines also give the calling thread's mean CPU time per
//! run (`/proc/thread-self/stat`, 10 ms ticks summed over all runs): unlike
//! the wall time, it does not grow when other processes share the cores.
//!
//! `tN` runs on the pool the library was built with: its own crossbeam
//! workers (`parallel`, the default) or rayon's global pool
//! (`cargo bench --bench throughput --features rayon`); the first line says
//! which.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use segpack::{IndexType, MaxSegments, PackOptions, Packer, Plan, Segment};

const PAGE: usize = 1 << 16;

/// xorshift64*: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One used heap page: objects (words, small ints, text, random blobs)
/// separated by zero gaps, with a free hole at the end.
fn heap_page(rng: &mut Rng) -> Vec<u8> {
    let mut page = vec![0u8; PAGE];
    let end = PAGE - (rng.below(PAGE as u64 * 2 / 5) as usize);
    let mut at = 0;
    while at < end {
        let len = 4 + rng.below(60) as usize;
        for b in page[at..(at + len).min(end)].iter_mut() {
            // about a quarter of the bytes inside objects are zero
            let r = rng.next();
            *b = if r.is_multiple_of(4) {
                0
            } else {
                (r >> 8) as u8 | 1
            };
        }
        at += len;
        at += match rng.below(100) {
            0..=79 => 9 + rng.below(4) as usize,
            80..=97 => 1 + rng.below(64) as usize,
            _ => 256 + rng.below(3840) as usize,
        };
    }
    page
}

/// The used pages of a naive snapshot of `mib` MiB: (page number, contents).
fn snapshot_pages(mib: usize) -> Vec<(usize, Vec<u8>)> {
    let mut rng = Rng(0x5e9_9ac4_0001);
    let pages = mib * (1 << 20) / PAGE;
    let mut used = Vec::new();
    let mut page = 0;
    while page < pages {
        // extents of 1-48 pages, used with probability 30%
        let extent = 1 + rng.below(48) as usize;
        let live = rng.chance(30);
        for p in page..(page + extent).min(pages) {
            if live && !rng.chance(5) {
                used.push((p, heap_page(&mut rng)));
            }
        }
        page += extent;
    }
    used
}

/// A core module with one memory of `mib` MiB and one active segment per page.
fn snapshot_module(mib: usize, pages: &[(usize, Vec<u8>)]) -> Vec<u8> {
    use wasm_encoder::{
        ConstExpr, DataSection, ExportKind, ExportSection, MemorySection, MemoryType, Module,
    };
    let mut module = Module::new();
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: (mib * (1 << 20) / PAGE) as u64,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    module.section(&memories);
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    module.section(&exports);
    let mut data = DataSection::new();
    for (page, bytes) in pages {
        let offset = (page * PAGE) as i32;
        data.active(0, &ConstExpr::i32_const(offset), bytes.iter().copied());
    }
    module.section(&data);
    module.finish()
}

struct Bench {
    filter: Vec<String>,
    budget: Duration,
}

impl Bench {
    /// Times `run` (which processes `bytes` bytes of input) and prints a line.
    fn case(&self, name: &str, bytes: usize, mut run: impl FnMut()) {
        if !self.filter.is_empty() && !self.filter.iter().any(|f| name.contains(f.as_str())) {
            return;
        }
        run(); // warm-up
        let mut best = Duration::MAX;
        let mut runs = 0;
        let start = Instant::now();
        let cpu_start = thread_cpu_ticks();
        while runs < 3 || (start.elapsed() < self.budget && runs < 1000) {
            let t = Instant::now();
            run();
            best = best.min(t.elapsed());
            runs += 1;
        }
        let cpu = match (cpu_start, thread_cpu_ticks()) {
            (Some(a), Some(b)) if name.ends_with("/t1") => {
                // Ticks of 10 ms (USER_HZ is 100 on every Linux target).
                let ms = (b - a) as f64 * 10.0 / runs as f64;
                format!(", cpu {ms:.1} ms/run = {:.1} MB/s", bytes as f64 / ms / 1e3)
            }
            _ => String::new(),
        };
        let secs = best.as_secs_f64();
        println!(
            "{name:<48} {:>10.3} ms {:>9.1} MB/s  ({runs} runs, {:.1} MB{cpu})",
            secs * 1e3,
            bytes as f64 / secs / 1e6,
            bytes as f64 / 1e6,
        );
    }

    fn module(&self, label: &str, input: &[u8]) {
        for (t, threads) in [("t1", 1), ("tN", 0)] {
            let options = PackOptions::default().with_threads(threads);
            self.case(&format!("plan/{label}/{t}"), input.len(), || {
                let plan = Plan::new(black_box(input), &options).expect("plan");
                black_box(plan.len());
            });
            self.case(&format!("pack/{label}/{t}"), input.len(), || {
                let report = segpack::pack_module(black_box(input), std::io::sink(), &options)
                    .expect("pack");
                black_box(report);
            });
        }
    }
}

/// User and system CPU time of the calling thread so far, in clock ticks,
/// where `/proc` tells it.
fn thread_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

fn corpus_dir() -> PathBuf {
    std::env::var_os("SEGPACK_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus"))
}

fn main() {
    // `cargo bench` passes `--bench`; other plain words filter the cases.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let secs = std::env::var("SEGPACK_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    let mib = std::env::var("SEGPACK_BENCH_MIB")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(256);
    let bench = Bench {
        filter,
        budget: Duration::from_secs_f64(secs),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pool = if cfg!(feature = "rayon") {
        "rayon's global pool"
    } else if cfg!(feature = "parallel") {
        "crossbeam workers"
    } else {
        "the calling thread only"
    };
    println!(
        "segpack throughput: t1 = 1 thread, tN = all cores ({cores}) on {pool}; MB = 10^6 bytes of input"
    );

    // A naive snapshot made here.
    let pages = snapshot_pages(mib);
    let module = snapshot_module(mib, &pages);
    let label = format!("snapshot-{mib}m");
    bench.module(&label, &module);

    let segments: Vec<Segment<'_>> = pages
        .iter()
        .map(|(page, bytes)| Segment {
            memory_index: 0,
            offset: (page * PAGE) as u64,
            data: bytes,
        })
        .collect();
    let payload: usize = pages.iter().map(|(_, b)| b.len()).sum();
    for (t, threads) in [("t1", 1), ("tN", 0)] {
        for cap in [10_000, 100_000] {
            let options = PackOptions::default()
                .with_threads(threads)
                .with_max_segments(MaxSegments::new(cap).expect("a valid cap"));
            bench.case(&format!("segments/{label}/cap{cap}/{t}"), payload, || {
                let packed =
                    segpack::pack_segments(black_box(&segments), &[IndexType::I32], &options)
                        .expect("pack_segments");
                black_box(packed.len());
            });
        }
    }
    drop(segments);

    let mut memory = vec![0u8; mib << 20];
    for (page, bytes) in &pages {
        memory[page * PAGE..][..PAGE].copy_from_slice(bytes);
    }
    for (t, threads) in [("t1", 1), ("tN", 0)] {
        for cap in [10_000, 100_000] {
            let options = PackOptions::default()
                .with_threads(threads)
                .with_max_segments(MaxSegments::new(cap).expect("a valid cap"));
            bench.case(
                &format!("packer/{label}/cap{cap}/{t}"),
                memory.len(),
                || {
                    let mut packer = Packer::new(&options);
                    packer.add_memory(0, IndexType::I32, black_box(&memory));
                    black_box(packer.finish().len());
                },
            );
        }
    }
    drop(memory);
    drop(module);

    // The real modules.
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect(),
        Err(err) => {
            println!("no corpus at {} ({err}); set SEGPACK_CORPUS", dir.display());
            Vec::new()
        }
    };
    files.sort();
    for path in files {
        let input = std::fs::read(&path).expect("read corpus file");
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        bench.module(&name, &input);
    }
}
