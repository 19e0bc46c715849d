"""How long a user stack of N ServiceSpecs takes to build under Pulumi mocks.

    uv run --locked python bench/stack_build_time.py [--counts 1 10 50 200] [--repeats 3]
        [--timeout 600] [--budget 1200] [--json PATH|-] [--profile N]

Each run is one fresh process (``--worker``) that imports pulumi, pulumi_aws and
flowhost.infra (timed separately: "import"), then runs one Pulumi program under the
recording mocks of tests/infra/services/harness.py (fake platform outputs, no
engine, no AWS) that creates N CPU ServiceSpecs ``svc-0001``... Every one is the
ServiceDefinition of ``bench/apps/stack_service.py``'s ``StackService`` with another
name (``model_copy(update={"name": ...})``) and ``code_dir=bench/apps``, so each one
builds the same code package. "program" is the wall clock and CPU time of
``run_services(build)``: from the first ServiceSpec to the last resolved output.

Inside the program the worker also sums (over all threads) the time spent building
code packages (``build_package`` + ``cached_package``) and inside the mock monitor's
``RegisterResource`` (the mock engine's side of each registration), to show where the
time goes; ``--profile N`` runs one more worker with cProfile and prints the top
functions by own time.

Every (N, repeat) has a hard ``--timeout``; the whole run has a ``--budget``: when the
first repeat of an N shows the remaining repeats would not fit, that N gets fewer
repeats (the table and the JSON say how many). Results: the median over repeats per N,
seconds per service and a least-squares fit of program time against N (slope,
intercept, R^2). Writes bench/results/stack_build_time.json unless ``--json`` says
otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
PYCACHE = RESULTS / "pycache"
COUNTS = (1, 10, 50, 200)


# ---------------------------------------------------------------------------------------
# the worker: one fresh process, one program


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def worker(count: int, out: Path, profile: int) -> None:
    """Import, build ``count`` ServiceSpecs under the mocks, write the timings to ``out``."""
    for path in (ROOT, BENCH, APPS):  # tests.infra..., apps.stack_service, bench_models
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    start = _clock()
    import pulumi
    import pulumi_aws  # noqa: F401  (the import ServiceSpec pays, timed here)

    import flowhost.infra.service.spec as service_spec
    from flowhost.infra import ServiceSpec
    from flowhost.services.spec import definition_of
    from tests.infra.recording import RecordingMonitor
    from tests.infra.services.harness import platform as platform_ref
    from tests.infra.services.harness import run_services

    import_wall, import_cpu = _since(start)
    from apps.stack_service import StackService  # a file of the code package, bench/apps

    definition = definition_of(StackService)
    inside = {"package_s": 0.0, "packages": 0, "monitor_s": 0.0, "registrations": 0}
    build_package, cached_package = service_spec.build_package, service_spec.cached_package
    register = RecordingMonitor.RegisterResource

    def timed_build(root: Path) -> tuple[str, bytes]:
        t = time.perf_counter()
        try:
            return build_package(root)
        finally:
            inside["package_s"] += time.perf_counter() - t
            inside["packages"] += 1

    def timed_cache(digest: str, archive: bytes) -> Path:
        t = time.perf_counter()
        try:
            return cached_package(digest, archive)
        finally:
            inside["package_s"] += time.perf_counter() - t

    def timed_register(self: RecordingMonitor, request: Any) -> Any:
        t = time.perf_counter()
        try:
            return register(self, request)
        finally:
            inside["monitor_s"] += time.perf_counter() - t  # float += under the GIL
            inside["registrations"] += 1

    # Measurement only, in this throwaway process: the names ServiceSpec calls.
    service_spec.build_package = timed_build
    service_spec.cached_package = timed_cache
    RecordingMonitor.RegisterResource = timed_register  # type: ignore[method-assign]

    names = [f"svc-{i:04d}" for i in range(1, count + 1)]

    def build() -> dict[str, Any]:
        ref = platform_ref()
        outputs: dict[str, pulumi.Output[Any]] = {}
        for name in names:
            spec = ServiceSpec(
                name,
                spec=definition.model_copy(update={"name": name}),
                platform=ref,
                code_dir=APPS,
            )
            assert spec.envelope_parameter is not None  # a CPU service: its envelope
            outputs[f"{name}.envelope_parameter"] = spec.envelope_parameter
            outputs[f"{name}.task_role_arn"] = spec.task_role_arn  # type: ignore[assignment]
        return outputs

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    begin = _clock()
    run = run_services(build)
    wall, cpu = _since(begin)
    if profiler is not None:
        import pstats

        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(profile)
        stats.sort_stats("cumulative").print_stats(profile)
    if len(run.outputs) != 2 * count:
        raise SystemExit(f"expected {2 * count} outputs, got {len(run.outputs)}")
    types = Counter(r.type for r in run.resources)
    result = {
        "count": count,
        "import_wall_s": import_wall,
        "import_cpu_s": import_cpu,
        "program_wall_s": wall,
        "program_cpu_s": cpu,
        "resources": len(run.resources),
        "custom_resources": sum(1 for r in run.resources if r.custom),
        "types": dict(sorted(types.items())),
        "outputs": len(run.outputs),
        **inside,
    }
    out.write_text(json.dumps(result))


# ---------------------------------------------------------------------------------------
# the driver: one subprocess per (N, repeat)


def worker_env(bytecode_cache: bool) -> dict[str, str]:
    """The worker's environment. With ``bytecode_cache``, compiled modules are written to
    and read from bench/results/pycache (as a normal install has .pyc files), even where
    the environment sets PYTHONDONTWRITEBYTECODE; without it, the environment as it is."""
    env = dict(os.environ)
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def run_worker(count: int, timeout: float, env: dict[str, str], profile: int = 0) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stack-build-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(count)]
        cmd += ["--worker-out", str(out), "--profile", str(profile)]
        start = _clock()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, start_new_session=True, stderr=subprocess.PIPE, env=env
        )
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise SystemExit(f"N={count}: no result within --timeout {timeout:.0f} s") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        process_wall = time.perf_counter() - start[0]
        text = err.decode(errors="replace")
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"N={count}: worker failed (exit {proc.returncode}):\n{text[-4000:]}")
        if profile:
            print(text)
        result: dict[str, Any] = json.loads(out.read_text())
        result["process_wall_s"] = process_wall
        return result


def fit(xs: list[float], ys: list[float]) -> dict[str, float]:
    """Least squares y = slope * x + intercept, and R^2."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if n < 2 or sxx == 0:
        return {"slope": float("nan"), "intercept": float("nan"), "r2": float("nan")}
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = my - slope * mx
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {"slope": slope, "intercept": intercept, "r2": 1 - ss_res / ss_tot if ss_tot else 1.0}


MEDIANS = (
    "import_wall_s",
    "import_cpu_s",
    "program_wall_s",
    "program_cpu_s",
    "process_wall_s",
    "package_s",
    "monitor_s",
)


def summarize(count: int, runs: list[dict[str, Any]], planned: int) -> dict[str, Any]:
    resources = {r["resources"] for r in runs}
    if len(resources) != 1:
        raise SystemExit(f"N={count}: resource count differs between repeats: {resources}")
    row: dict[str, Any] = {
        "count": count,
        "repeats": len(runs),
        "planned_repeats": planned,
        "resources": runs[0]["resources"],
        "custom_resources": runs[0]["custom_resources"],
        "types": runs[0]["types"],
        "registrations": runs[0]["registrations"],
        "packages": runs[0]["packages"],
        "program_wall_min_s": min(r["program_wall_s"] for r in runs),
        "program_wall_max_s": max(r["program_wall_s"] for r in runs),
        "runs": runs,
    }
    for key in MEDIANS:
        row[key] = statistics.median(r[key] for r in runs)
    row["s_per_service"] = row["program_wall_s"] / count
    row["cpu_s_per_service"] = row["program_cpu_s"] / count
    return row


def facts() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions = {}
    for name in ("pulumi", "pulumi-aws", "grpcio", "protobuf"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "python": platform.python_version(),
        "load_avg_at_start": os.getloadavg(),
        "packages": versions,
    }


def render(rows: list[dict[str, Any]], fits: dict[str, dict[str, float]], console: Console) -> None:
    table = Table(title="ServiceSpec stack build time under Pulumi mocks (median over repeats)")
    for name in ("N", "resources", "import s", "program s (min-max)", "program CPU s"):
        table.add_column(name, justify="right")
    for name in ("s/service", "packaging s", "in monitor s", "process s", "repeats"):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            str(row["count"]),
            str(row["resources"]),
            f"{row['import_wall_s']:.2f}",
            f"{row['program_wall_s']:.2f} "
            f"({row['program_wall_min_s']:.2f}-{row['program_wall_max_s']:.2f})",
            f"{row['program_cpu_s']:.2f}",
            f"{row['s_per_service']:.3f}",
            f"{row['package_s']:.3f}",
            f"{row['monitor_s']:.2f}",
            f"{row['process_wall_s']:.2f}",
            f"{row['repeats']}/{row['planned_repeats']}",
        )
    console.print(table)
    for label, f in fits.items():
        console.print(
            f"fit {label}: {f['slope']:.4f} * N + {f['intercept']:.3f}  (R^2 = {f['r2']:.4f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="ServiceSpec stack build time under Pulumi mocks")
    parser.add_argument("--counts", type=int, nargs="+", default=list(COUNTS))
    parser.add_argument("--repeats", type=int, default=3, help="runs per N (median reported)")
    parser.add_argument("--timeout", type=float, default=600.0, help="hard limit per run, s")
    parser.add_argument("--budget", type=float, default=1200.0, help="whole run, s")
    parser.add_argument("--json", default=str(RESULTS / "stack_build_time.json"))
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N",
        help="also profile one run of the largest count: its top N functions",
    )  # fmt: skip
    parser.add_argument(
        "--no-bytecode-cache", dest="bytecode_cache", action="store_false",
        help="run the workers in the environment as it is (no .pyc files if it sets "
        "PYTHONDONTWRITEBYTECODE: every import compiles its module)",
    )  # fmt: skip
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.worker_out, args.profile)
        return

    console = Console(stderr=args.json == "-", width=None if sys.stdout.isatty() else 160)
    began = time.monotonic()
    machine = facts()
    env = worker_env(args.bytecode_cache)
    machine["bytecode_cache"] = args.bytecode_cache
    machine["PYTHONDONTWRITEBYTECODE_set"] = "PYTHONDONTWRITEBYTECODE" in os.environ
    warm = run_worker(1, args.timeout, env)  # unmeasured: fills the bytecode and package caches
    console.print(f"warm-up (N=1, not counted): program {warm['program_wall_s']:.2f} s")
    rows: list[dict[str, Any]] = []
    for count in sorted(set(args.counts)):
        runs: list[dict[str, Any]] = []
        planned = args.repeats
        for i in range(args.repeats):
            left = args.budget - (time.monotonic() - began)
            if runs and runs[0]["process_wall_s"] > left:
                console.print(f"N={count}: stopping after {len(runs)} repeat(s), budget spent")
                break
            timeout = min(args.timeout, max(left, 1.0))
            result = run_worker(count, timeout, env)
            runs.append(result)
            console.print(
                f"N={count} repeat {i + 1}: program {result['program_wall_s']:.2f} s "
                f"(CPU {result['program_cpu_s']:.2f} s), import {result['import_wall_s']:.2f} s, "
                f"{result['resources']} resources"
            )
        rows.append(summarize(count, runs, planned))
    xs = [float(r["count"]) for r in rows]
    fits = {
        "program wall s": fit(xs, [r["program_wall_s"] for r in rows]),
        "program CPU s": fit(xs, [r["program_cpu_s"] for r in rows]),
        "resources": fit(xs, [float(r["resources"]) for r in rows]),
    }
    render(rows, fits, console)
    report = {
        "machine": machine,
        "command": " ".join(["uv run --locked python bench/stack_build_time.py", *sys.argv[1:]]),
        "elapsed_s": time.monotonic() - began,
        "rows": rows,
        "fits": fits,
    }
    if args.profile:
        console.print(f"profiling one run with N={max(args.counts)} (cProfile, slower):")
        run_worker(max(args.counts), args.timeout, env, profile=args.profile)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    else:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
