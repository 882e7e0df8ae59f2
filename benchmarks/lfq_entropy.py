"""Benchmark: LFQ forward+backward time and peak memory, exact factorized entropy vs.
vector-quantize-pytorch's ``LFQ`` (which forms the full ``N x 2^d`` distribution).

    python benchmarks/lfq_entropy.py                 # default grid, a few minutes on 2 cores
    python benchmarks/lfq_entropy.py --quick         # tiny grid, smoke test
    python benchmarks/lfq_entropy.py --peer-all      # run the peer at every size estimated to fit
    python benchmarks/lfq_entropy.py --write benchmarks/RESULTS_lfq.md

Method. Every (implementation, d, N) case runs in its own subprocess with
``torch.set_num_threads(threads)`` (default 2). Input: ``z ~ N(0, 1)`` of shape
``[N / 256, d, 16, 16]`` (image-like, channel-first), temperature 0.01, entropy weight 0.1,
commitment 0.25, gamma 1. One step = forward + ``loss.backward()``.

* time: the first step is a warm-up; then steps repeat until ``--reps`` steps or
  ``--budget`` seconds; the minimum (and the median) are reported. The peer's largest
  cases run a single (cold) step, marked ``*``.
* environment of each subprocess: ``OMP_WAIT_POLICY=PASSIVE`` (unless set), since
  spinning OpenMP waits made 2-thread timings on a shared machine up to 10x slower.
* peak memory: the extra resident memory one forward+backward needed: the kernel's
  peak-RSS mark is reset just before the first step (Linux ``/proc/self/clear_refs``),
  and ``VmHWM`` after it minus ``VmRSS`` before it is reported (input and module
  already built). glibc is told to serve blocks over 64 KiB by ``mmap`` so freed
  tensors leave the RSS. Elsewhere it falls back to ``ru_maxrss`` deltas, a lower
  bound. ``tracemalloc`` does not see torch allocations.

The peer (``vector_quantize_pytorch.LFQ``, optional) runs only where its estimated
peak (``7 x 4 N 2^d`` bytes, measured factor) fits ``--peer-cap-gib`` (default 8)
and, without ``--peer-all``, where ``N 2^d <= 2^24`` or at the headline size
``d=16, N=4096``; other cells say why they were skipped. Its entropies clamp
probabilities at 1e-5 (``log(p.clamp(1e-5))``), so its values differ slightly from
the exact ones; the ``dH_cb`` column shows the difference in codebook entropy.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID_D = (10, 14, 16, 18)
GRID_N = (1024, 4096, 16384)
TAU = 0.01
PEER_BYTES_FACTOR = 7 * 4  # measured peak of the peer: about 7 fp32 N x 2^d tensors
HEADLINE = (16, 4096)


# ----------------------------------------------------------------------------- child
def run_case(impl: str, d: int, n: int, threads: int, reps: int, budget: float) -> dict:
    import resource

    import torch

    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(1000 * d + n)
    z = torch.randn(n // 256, d, 16, 16, generator=gen).requires_grad_()
    if impl == "peer":
        from vector_quantize_pytorch import LFQ as PeerLFQ

        quant = PeerLFQ(dim=d, codebook_size=2**d, entropy_loss_weight=0.1, commitment_loss_weight=0.25, diversity_gamma=1.0)
        quant.train()

        def step():
            ret, parts = quant(z, inv_temperature=1.0 / TAU, return_loss_breakdown=True)
            loss = ret.entropy_aux_loss
            loss.backward()
            return parts.per_sample_entropy.item(), parts.batch_entropy.item()

    else:
        sys.path.insert(0, str(ROOT))
        from magvit2.quantizers import LFQ

        mode = "grouped" if impl == "ours-grouped" else "exact"
        method = "dense" if impl == "ours-dense" else "auto"
        quant = LFQ(d, temperature=TAU, entropy_mode=mode, group_bits=9, exact_method=method)

        def step():
            out = quant(z)
            out.loss.backward()
            return out.per_sample_entropy.item(), out.codebook_entropy.item()

    base_kib, reset = _reset_peak_rss()
    t0 = time.perf_counter()
    per_sample, codebook = step()
    first = time.perf_counter() - t0
    peak_kib = _status_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mib = max(0.0, peak_kib - base_kib) / 1024.0
    times, start = [], time.perf_counter()
    while len(times) < reps and time.perf_counter() - start < budget:
        z.grad = None
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times) if times else first,
        "min_s": min(times) if times else first,
        "steps": len(times),
        "cold": not times,
        "peak_mib": peak_mib,
        "per_sample": per_sample,
        "codebook": codebook,
    }


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":"))


def _reset_peak_rss() -> tuple[int, bool]:
    """Reset the kernel's peak-RSS mark (Linux ``clear_refs`` 5); returns (baseline KiB, reset worked)."""
    import resource

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS"), True
    except OSError:  # not Linux, or not permitted: fall back to the ru_maxrss high-water mark
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, False


# ----------------------------------------------------------------------------- parent
def peer_available() -> bool:
    try:
        import vector_quantize_pytorch  # noqa: F401
    except Exception:
        return False
    return True


def spawn(impl: str, d: int, n: int, args: argparse.Namespace, reps: int) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, str(d), str(n), "--threads", str(args.threads),
           "--reps", str(reps), "--budget", str(args.budget)]
    # large blocks via mmap, so freed memory leaves the RSS and the peak measures live tensors;
    # OpenMP threads sleep instead of spinning while they wait (on a shared CPU spinning
    # threads slowed 2-thread steps by up to 10x in our runs)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        reason = "OOM" if proc.returncode in (-9, 137) or "memory" in tail.lower() else f"failed: {tail[:80]}"
        return {"error": reason}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peer_plan(d: int, n: int, args: argparse.Namespace) -> tuple[bool, str, int]:
    """(run?, reason if skipped, reps)."""
    est_gib = PEER_BYTES_FACTOR * n * 2**d / 2**30
    if est_gib > args.peer_cap_gib:
        return False, f"skipped (est. {est_gib:.0f} GiB > {args.peer_cap_gib:g} GiB cap)", 0
    small = n * 2**d <= 2**24
    if not (args.peer_all or small or (d, n) == HEADLINE):
        return False, f"skipped (time; est. {est_gib:.1f} GiB; --peer-all runs it)", 0
    return True, "", args.reps if small else 0


def fmt_time(r: dict) -> str:
    if "error" in r:
        return r["error"]
    star = "*" if r["cold"] else ""
    return f"{r['min_s'] * 1e3:.0f}{star} ({r['median_s'] * 1e3:.0f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "D", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of timed steps per case")
    ap.add_argument("--quick", action="store_true", help="tiny grid (d in 10, 14; N = 1024)")
    ap.add_argument("--peer-all", action="store_true")
    ap.add_argument("--peer-cap-gib", type=float, default=8.0)
    ap.add_argument("--write", type=Path, default=None, help="write the markdown table to this file")
    args = ap.parse_args()

    if args.child:
        impl, d, n = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(run_case(impl, d, n, args.threads, args.reps, args.budget)))
        return

    import torch

    grid_d, grid_n = ((10, 14), (1024,)) if args.quick else (GRID_D, GRID_N)
    have_peer = peer_available()
    if not have_peer:
        print("vector-quantize-pytorch is not installed: the peer columns are skipped "
              "(pip install --no-deps vector-quantize-pytorch einx frozendict loguru torch-einops-utils)")
    load_before = os.getloadavg()
    started = time.time()
    rows = []
    for d in grid_d:
        for n in grid_n:
            ours = spawn("ours", d, n, args, args.reps)
            dense = spawn("ours-dense", d, n, args, args.reps)
            grouped = spawn("ours-grouped", d, n, args, args.reps)
            if have_peer:
                run, reason, reps = peer_plan(d, n, args)
                peer = spawn("peer", d, n, args, reps) if run else {"error": reason}
            else:
                peer = {"error": "absent"}
            rows.append((d, n, ours, dense, grouped, peer))
            print(format_row(rows[-1]), flush=True)
    elapsed = time.time() - started
    table = render(rows)
    header = describe(torch.__version__, args, load_before, os.getloadavg(), elapsed, have_peer)
    print()
    print(header + table)
    if args.write:
        args.write.write_text("# LFQ entropy benchmark\n\n" + header + table + NOTES)
        print(f"wrote {args.write}")


def ratio(peer: dict, ours: dict, key: str) -> str:
    if "error" in peer or "error" in ours or ours[key] <= 0:
        return "-"
    return f"{peer[key] / ours[key]:.0f}x"


def format_row(row) -> str:
    d, n, ours, dense, grouped, peer = row
    dh = "-" if "error" in peer or "error" in ours else f"{abs(peer['codebook'] - ours['codebook']):.1e}"
    mem = lambda r: "-" if "error" in r else f"{r['peak_mib']:.1f}"  # noqa: E731
    return (f"| {d} | {n} | {fmt_time(ours)} | {mem(ours)} | {fmt_time(dense)} | {mem(dense)} | "
            f"{fmt_time(grouped)} | {mem(grouped)} | "
            f"{fmt_time(peer)} | {mem(peer)} | {ratio(peer, ours, 'min_s')} | {ratio(peer, ours, 'peak_mib')} | {dh} |")


def render(rows) -> str:
    head = ("| d | N | exact ms min (median) | exact peak MiB | exact-dense ms min (median) | exact-dense peak MiB | "
            "grouped ms min (median) | grouped peak MiB | peer ms min (median) | peer peak MiB | "
            "peer/exact time (min) | peer/exact memory | dH_cb vs peer |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    return head + "\n".join(format_row(r) for r in rows) + "\n"


def describe(torch_version: str, args, load_before, load_after, elapsed: float, have_peer: bool) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    peer = "vector-quantize-pytorch " + _version("vector-quantize-pytorch") if have_peer else "peer absent"
    cmd = "python benchmarks/lfq_entropy.py " + " ".join(a for a in sys.argv[1:])
    return (
        f"- command: `{cmd.strip()}`\n"
        f"- date: {datetime.date.today().isoformat()}; total wall time {elapsed:.0f} s\n"
        f"- machine: {cpu}, {os.cpu_count()} cores visible, torch {torch_version} (CPU), {args.threads} threads; {peer}\n"
        f"- load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} (other jobs shared the CPUs)\n"
        f"- subprocess per case with OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'PASSIVE')}\n"
        f"- step = forward + backward of the full LFQ loss; z ~ N(0, 1), tau = {TAU}; "
        f"`*` = a single cold step; peak = extra peak RSS (VmHWM after minus VmRSS before) of the first step\n\n"
    )


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return "?"


NOTES = """
Columns: `exact` is `LFQ(entropy_mode="exact")` (per-sample term from per-bit binary
entropies, codebook term from the exact joint mean of two bit groups; on CPU the
default `exact_method="auto"` lets confident tokens add only their likely code pairs);
`exact-dense` forces the `Q_A^T Q_B / N` matmul for every token (`exact_method="dense"`,
the cost whatever the inputs, and the path used on GPUs);
`grouped` is the explicit approximation `entropy_mode="grouped", group_bits=9` (sum of
per-group codebook entropies); `peer` is `vector_quantize_pytorch.LFQ` in training mode.
Ratios are peer / exact (larger = ours better). Times are the minimum over the timed
steps, with the median in parentheses; the machine's 2 cores were shared with other
jobs (see the load average), which inflates medians far more than minima.
"""


if __name__ == "__main__":
    main()
