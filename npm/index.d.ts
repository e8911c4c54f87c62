/** Options, named as in the Rust library's `PackOptions`. */
export interface Options {
  /**
   * The most data segments the output may have: 1 to 100,000 (engines reject
   * more). Default 10,000, Wizer's cap.
   */
  maxSegments?: number;
  /**
   * Pack imported memories too: a promise that the host hands them in zeroed.
   * Default false.
   */
  zeroFilledImports?: boolean;
  /**
   * What to make smallest (`pack` only): `'raw'` (the default: the data
   * section), or the file once compressed with `'gzip'`, `'brotli'` or
   * `'zstd'`, optionally with a level (`'gzip:6'`; defaults gzip 9,
   * brotli 11, zstd 19). Never larger compressed than the input. This
   * package has no zstd (zstd's C library is not built for WebAssembly):
   * `'zstd'` throws a `SegpackError` saying so; use the native segpack.
   */
  optimizeFor?: string;
}

/** The whole file compressed, before and after `optimizeFor`. */
export interface CompressedReport {
  codec: 'gzip' | 'brotli' | 'zstd';
  level: number;
  bytes_before: number;
  bytes_after: number;
  /** Every byte handed to the codec: the cost, at most 3x the input plus 64 KiB. */
  bytes_compressed: number;
  /** The layouts weighed: cap, output bytes, compressed bytes of the sample. */
  candidates: { max_segments: number; bytes: number; data_compressed_estimate: number }[];
  /** The layouts then compressed whole, best-ranked first: cap, compressed bytes. */
  measured: { max_segments: number; compressed_bytes: number }[];
}

/** What became of one memory that was not packed. */
export interface UnpackedMemory {
  memory: number;
  reason: string;
}

/** One core module (a module, or one inside a component). */
export interface ModuleReport {
  /** `""` for a module, `"core module N"` inside a component. */
  path: string;
  segments_before: number;
  segments_after: number;
  data_bytes_before: number;
  data_bytes_after: number;
  changed: boolean;
  unpacked_memories: UnpackedMemory[];
  warnings: string[];
}

/** What `--max-segments 100000` would give when the cap held packing back. */
export interface AtEngineLimit {
  max_segments: number;
  segments: number;
  data_bytes: number;
}

/** The summary `segpack pack --json` prints. */
export interface PackReport {
  segments_before: number;
  segments_after: number;
  data_bytes_before: number;
  data_bytes_after: number;
  input_bytes: number;
  output_bytes: number;
  /** False when packing gained nothing: the output is the input. */
  changed: boolean;
  /** Seconds spent inside segpack. */
  seconds: number;
  at_engine_limit: AtEngineLimit | null;
  /** With `optimizeFor` a codec: the compressed sizes. */
  compressed?: CompressedReport;
  modules: ModuleReport[];
}

/** One memory of one core module, as `segpack inspect --json` reports it. */
export interface MemoryInspection {
  memory: number;
  imported: boolean;
  index_type: 'i32' | 'i64';
  packable: boolean;
  not_packable_reason: string | null;
  segments: number;
  segment_bytes: number;
  data_bytes: number;
  zero_bytes: number;
  non_zero_bytes: number;
  packed_segments: number;
  packed_segment_bytes: number;
  [key: string]: unknown;
}

/** The report `segpack inspect --json` prints. */
export interface InspectReport extends Omit<PackReport, 'modules'> {
  modules: (ModuleReport & { memories: MemoryInspection[] })[];
}

/** The result of packing. */
export interface PackResult {
  /** The packed module or component (the input's bytes when nothing was gained). */
  output: Uint8Array;
  report: PackReport;
}

/**
 * An error segpack reported: `message` is the line the CLI prints, without
 * its `error: ` prefix.
 */
export class SegpackError extends Error {
  name: 'SegpackError';
  /** The CLI's exit status: 1 bad input or I/O error, 2 invalid options. */
  status: number;
  /** Everything the CLI printed on standard error. */
  stderr: string;
}

/**
 * Packs the data segments of a module or component. The same bytes as
 * `segpack pack` (native or npm). Compiles the WebAssembly module off the main
 * thread on first use, then runs it on this thread.
 * @throws {SegpackError} on bad input or invalid options
 * @throws {TypeError} when `bytes` or an option has the wrong type
 */
export function pack(bytes: Uint8Array, options?: Options): Promise<PackResult>;

/** What packing would give, per core module and memory; writes nothing. */
export function inspect(bytes: Uint8Array, options?: Options): Promise<InspectReport>;

/** {@link pack}, synchronous (compiles the WebAssembly module on this thread on first use). */
export function packSync(bytes: Uint8Array, options?: Options): PackResult;

/** {@link inspect}, synchronous. */
export function inspectSync(bytes: Uint8Array, options?: Options): InspectReport;
