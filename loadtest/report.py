#!/usr/bin/env python3
"""The table and latest.json of loadtest/run, from its phase files.

usage: report.py 10m|100m PHASES_DIR RESULTS_JSON

PHASES_DIR holds one file per phase: NAME.json (the load generator's summary) or NAME (one
number). Prints the figures, the ratios the targets are about and whether each target is met;
writes RESULTS_JSON with the keys issue #5 names (null where not measured).
"""
import datetime
import json
import os
import platform
import subprocess
import sys


def load(phases):
    out = {}
    for name in os.listdir(phases):
        path = os.path.join(phases, name)
        text = open(path).read().strip()
        if name.endswith(".json"):
            out[name[:-5]] = json.loads(text)
        else:
            try:
                out[name] = float(text)
            except ValueError:
                out[name] = None
    return out


def commit():
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        # the figures this run is writing do not make the measured code dirty
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", ":!loadtest/results"],
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(x, digits=0):
    if x is None:
        return "-"
    if isinstance(x, float) and digits:
        return f"{x:,.{digits}f}"
    return f"{x:,.0f}"


def main():
    scale, phases_dir, results = sys.argv[1], sys.argv[2], sys.argv[3]
    p = load(phases_dir)

    def rate(phase, key="rps"):
        return p[phase][key] if phase in p else None

    def one(name):
        return p.get(name)

    def median_of_runs(name, key="p99_us"):
        # a phase run three times (NAME_1..NAME_3): the median run's figure, and each run's
        runs = [p[f"{name}_{i}"][key] for i in (1, 2, 3) if f"{name}_{i}" in p]
        return (sorted(runs)[len(runs) // 2] if runs else None), runs

    def each_run(name, key):
        # a figure of each of the three runs (None where a run's phase lacks it)
        return [p[f"{name}_{i}"].get(key) for i in (1, 2, 3) if f"{name}_{i}" in p]

    def stolen(name):
        return [one(f"{name}_{i}_stolen_ms") for i in (1, 2, 3) if f"{name}_{i}" in p]

    def around(name, key="rps"):
        # a baseline measured right before and right after the phase it is compared with
        runs = [p[f"{name}_{when}"][key] for when in ("before", "after") if f"{name}_{when}" in p]
        return sum(runs) / len(runs) if runs else rate(name, key)

    if scale == "100m":
        figures = {
            "entries": one("entries"),
            "single_check_rps": rate("native"),
            "single_check_rps_10m": rate("native_10m"),
            "hello_h1_rps": rate("hello_h1"),
            "import_cli_s": one("import_cli_s"),
            "rss_mb": one("rss_mb"),
            "startup_s": one("startup_s"),
            "commit": commit(),
        }
        rows = [
            ("single check req/s at this scale vs at 10 M", figures["single_check_rps"],
             figures["single_check_rps_10m"], ">= 0.80"),
            ("single check req/s vs hello-world HTTP/1.1", figures["single_check_rps"],
             figures["hello_h1_rps"], ""),
        ]
        limits = [
            ("RSS (MiB, 512 MB block cache)", figures["rss_mb"], "<= 1536", 1536),
            ("start-up to ready (s)", figures["startup_s"], "<= 60", 60),
            ("offline import of the positive list (s)", figures["import_cli_s"], "", None),
        ]
    else:
        open_loop = p.get("open_loop", {})
        s13_open_loop_p99, s13_open_loop_runs = median_of_runs("s13_open_loop")
        hello_s13_open_loop_p99, hello_s13_open_loop_runs = median_of_runs("hello_s13_open_loop")
        figures = {
            "single_check_rps": rate("native"),
            "redis_sismember_rps": around("redis"),
            "eir_h2_rps": rate("eir_h2"),
            "hello_h2_rps": around("hello_h2"),
            "hello_h1_rps": around("hello_h1"),
            "s13_ecr_per_s": rate("s13", "items_per_s"),
            "s13_server_p99_us": one("s13_server_p99_us"),
            "s13_open_loop_rate": one("s13_open_loop_rate"),
            "s13_open_loop_p99_us": s13_open_loop_p99,
            "s13_open_loop_p99_us_runs": s13_open_loop_runs,
            "s13_open_loop_stolen_ms_runs": stolen("s13_open_loop"),
            "s13_open_loop_from_write_p99_us_runs":
                each_run("s13_open_loop", "from_write_p99_us"),
            "s13_open_loop_late_p99_us_runs": each_run("s13_open_loop", "late_p99_us"),
            "hello_s13_ecr_per_s": rate("hello_s13", "items_per_s"),
            "hello_s13_open_loop_p99_us": hello_s13_open_loop_p99,
            "hello_s13_open_loop_p99_us_runs": hello_s13_open_loop_runs,
            "hello_s13_open_loop_from_write_p99_us_runs":
                each_run("hello_s13_open_loop", "from_write_p99_us"),
            "batch_imeis_per_s": rate("batch", "items_per_s"),
            "redis_pipelined_per_s": rate("redis_pipelined", "items_per_s"),
            "open_loop_rate": one("open_loop_rate"),
            "open_loop_p99_us": open_loop.get("p99_us"),
            "hello_open_loop_p99_us": p.get("hello_open_loop", {}).get("p99_us"),
            "server_p99_us": one("server_p99_us"),
            "checks_alone_p99_us": p.get("checks_alone", {}).get("p99_us"),
            "checks_beside_forbidden_writes_p99_us":
                p.get("checks_beside_writes", {}).get("p99_us"),
            "forbidden_writes_per_s": rate("forbidden_writes"),
            "import_http_s": one("import_http_s"),
            "import_cli_s": one("import_cli_s"),
            "postgres_copy_s": one("postgres_copy_s"),
            "postgres_lookup_rps": rate("postgres"),
            "entries": one("entries"),
            "rss_mb": one("rss_mb"),
            "startup_s": one("startup_s"),
            "page_bytes": one("page_bytes"),
            "page_css_bytes": one("page_css_bytes"),
            "page_p50_us": p.get("page", {}).get("p50_us"),
            "page_p99_us": p.get("page", {}).get("p99_us"),
            "hello_page_p99_us": p.get("hello_page", {}).get("p99_us"),
            "commit": commit(),
        }
        f = figures
        rows = [
            ("native single check req/s vs Redis SISMEMBER", f["single_check_rps"],
             f["redis_sismember_rps"], ">= 1.00"),
            ("N5g-eir over h2c req/s vs hello-world h2c", f["eir_h2_rps"], f["hello_h2_rps"],
             ">= 0.80"),
            ("S13 ECR/s (8 conns x 64 outstanding) vs N5g-eir h2c", f["s13_ecr_per_s"],
             f["eir_h2_rps"], ">= 1.00"),
            ("  the same vs Diameter hello-world", f["s13_ecr_per_s"], f["hello_s13_ecr_per_s"],
             ""),
            ("batch IMEIs/s vs Redis SISMEMBER, pipeline 16", f["batch_imeis_per_s"],
             f["redis_pipelined_per_s"], ">= 1.00"),
            ("native single check req/s vs hello-world HTTP/1.1", f["single_check_rps"],
             f["hello_h1_rps"], ">= 0.75"),
            ("  the same with an operator's token", rate("native_token"), f["hello_h1_rps"], ""),
            ("native single check req/s vs PostgreSQL lookups", f["single_check_rps"],
             f["postgres_lookup_rps"], ""),
        ]
        copy = f["postgres_copy_s"]
        limits = [
            (f"open loop at {fmt(f['open_loop_rate'])} req/s: client p99 (us)",
             f["open_loop_p99_us"], "<= 1000", 1000),
            ("  server-side p99 (us, bucket bound)", f["server_p99_us"], "<= 20", 20),
            ("  hello-world at the same rate: client p99 (us)", f["hello_open_loop_p99_us"], "",
             None),
            (f"S13 open loop at {fmt(f['s13_open_loop_rate'])} ECR/s: client p99 (us)",
             f["s13_open_loop_p99_us"], "<= 1000", 1000),
            ("  its three runs (us; the figure is their median)",
             ", ".join(fmt(x) for x in f["s13_open_loop_p99_us_runs"]), "", None),
            ("  time stolen by the host during each (ms)",
             ", ".join(fmt(x) for x in f["s13_open_loop_stolen_ms_runs"]), "", None),
            ("  each run's p99 from the ECR's write (us)",
             ", ".join(fmt(x) for x in f["s13_open_loop_from_write_p99_us_runs"]), "", None),
            ("  each run's p99 of the generator's lateness (us)",
             ", ".join(fmt(x) for x in f["s13_open_loop_late_p99_us_runs"]), "", None),
            ("  Diameter hello-world at the same rate: p99 (us)",
             f["hello_s13_open_loop_p99_us"], "", None),
            ("  its three runs (us), and from the write",
             ", ".join(fmt(x) for x in f["hello_s13_open_loop_p99_us_runs"]) + "; "
             + ", ".join(fmt(x) for x in f["hello_s13_open_loop_from_write_p99_us_runs"]),
             "", None),
            ("  S13 server-side p99 (us, bucket bound)", f["s13_server_p99_us"], "<= 20", 20),
            ("checks' p99 beside forbidden writes / alone (x)",
             ratio(f["checks_beside_forbidden_writes_p99_us"], f["checks_alone_p99_us"]),
             "<= 2", 2),
            (f"  p99 alone, beside {fmt(f['forbidden_writes_per_s'])} writes/s (us)",
             f["checks_alone_p99_us"], "", None),
            ("  p99 beside them (us)", f["checks_beside_forbidden_writes_p99_us"], "", None),
            ("import over HTTP (s)", f["import_http_s"], f"<= 20, < COPY {fmt(copy, 1)}",
             min(20, copy) if copy else 20),
            ("import with the offline CLI (s)", f["import_cli_s"], f"<= 10, < COPY {fmt(copy, 1)}",
             min(10, copy) if copy else 10),
            ("PostgreSQL COPY of the same file (s)", copy, "", None),
            ("Redis load of the same IMEIs (s)", one("redis_load_s"), "", None),
            ("imeidb RSS after the checks (MiB)", f["rss_mb"], "", None),
            ("Redis RSS (MiB)", one("redis_rss_mb"), "", None),
            ("start-up to ready (s)", f["startup_s"], "", None),
            ("public page with its answer + stylesheet over the wire (bytes)",
             (f["page_bytes"] or 0) + (f["page_css_bytes"] or 0), "< 30720", 30719),
            ("public page, one at a time: client p99 (us)", f["page_p99_us"], "<= 5000", 5000),
            ("  hello-world, one at a time: client p99 (us)", f["hello_page_p99_us"], "", None),
            ("  public page p50 (us)", f["page_p50_us"], "", None),
        ]

    os.makedirs(os.path.dirname(results) or ".", exist_ok=True)
    with open(results, "w") as out:
        json.dump(figures, out, indent=2)
        out.write("\n")

    print(f"imeidb side by side — {datetime.date.today()} commit {figures['commit']} "
          f"on {platform.node()} ({os.cpu_count()} cores); {fmt(one('entries'))} entries")
    print()
    print(f"{'figure':52} {'imeidb':>13} {'baseline':>13} {'ratio':>6}  target")
    for label, ours, theirs, target in rows:
        r = ratio(ours, theirs)
        verdict = ""
        if target and r is not None:
            verdict = "met" if r >= float(target.split()[-1]) else "MISSED"
        print(f"{label:52} {fmt(ours):>13} {fmt(theirs):>13} "
              f"{'-' if r is None else f'{r:.2f}':>6}  {target} {verdict}")
    print()
    for label, value, target, bound in limits:
        verdict = ""
        if isinstance(value, str):
            print(f"{label:52} {value:>13}")
            continue
        if bound is not None and value is not None:
            verdict = "met" if value <= bound else "MISSED"
        print(f"{label:52} {fmt(value, 1):>13}  {target} {verdict}")
    print()
    print("latency percentiles, client side, microseconds (p50 / p99 / p99.9 / max):")
    for name in sorted(n for n in p if isinstance(p[n], dict)):
        s = p[name]
        errors = {k: v for k, v in s["statuses"].items() if k != "200"}
        print(f"  {name:18} {s['p50_us']:>9.1f} {s['p99_us']:>9.1f} {s['p999_us']:>9.1f} "
              f"{s['max_us']:>10.1f}   answers {s['requests']:,}"
              + (f", other statuses {errors}" if errors else ""))
    print(f"\nwritten to {results}")


if __name__ == "__main__":
    main()
