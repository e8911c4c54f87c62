// A small StarlingMonkey program for tests/component_e2e.rs: some state
// built at snapshot time (so the heap image holds data), one export.
const table = new Map([["segpack", "packs data segments"], ["wizer", "snapshots"]]);
const primes = [];
for (let n = 2; primes.length < 500; n++) {
  if (primes.every((p) => n % p !== 0)) primes.push(n);
}

export function greet(name) {
  const what = table.get(name) ?? "is new here";
  return `${name} ${what}; the 500th prime is ${primes[499]}`;
}
