"""Summaries, the targets check, JSON and Markdown output, and the README table.

A cell (set-up × database × scenario × concurrency × target) reports the median throughput of
its valid runs with the min–max, the medians of p50 and p99, every error, the number of
voided runs (any socket error, unexpected status or server error line voids a run), the peak
RSS per worker, and the ratios of the app's median to the ceiling's and the peer's.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from bench.scenarios import BY_NAME

README = Path(__file__).resolve().parents[1] / "README.md"
README_START = "<!-- bench-results:start -->"
README_END = "<!-- bench-results:end -->"

# Targets on set-up B (the whole machine).
TARGETS = {
    "dashboard_rps": 1200.0,
    "dashboard_vs_peer": 2.0,
    "dashboard_p99_ms": 150.0,
    "signin_vs_ceiling": 0.45,
    "create_rps": 800.0,
    "create_p99_ms": 250.0,
    "login_rps": 60.0,
    "burst_rss_mib": 150.0,
    "burst_p99_ratio": 3.0,
    "soak_rss_mib": 100.0,
    "soak_growth_mib": 5.0,
}


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def summarise(
    meta: dict[str, Any],
    records: list[dict[str, Any]],
    bursts: list[dict[str, Any]],
    soaks: list[dict[str, Any]],
) -> dict[str, Any]:
    """Group ``records`` into cells, add ratios and the targets check; the whole result dict."""
    cells: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in records:
        key = (r["setup"], r["backend"], r["scenario"], r["concurrency"], r["target"])
        cells.setdefault(key, []).append(r)
    summary = []
    for (setup, backend, scenario, c, target), runs in cells.items():
        valid = [r for r in runs if not r["void"]]
        rps = [r["rps"] for r in valid]
        peaks = [r["peak_rss_mib"] for r in runs if r["peak_rss_mib"]]
        summary.append(
            {
                "setup": setup,
                "backend": backend,
                "scenario": scenario,
                "concurrency": c,
                "target": target,
                "runs": len(runs),
                "void_runs": len(runs) - len(valid),
                "rps_median": _median(rps),
                "rps_min": min(rps) if rps else None,
                "rps_max": max(rps) if rps else None,
                "p50_ms": _median([r["p50_ms"] for r in valid]),
                "p99_ms": _median([r["p99_ms"] for r in valid]),
                "cpu_ms_per_request": _median(
                    [r["cpu_ms_per_request"] for r in valid if r["cpu_ms_per_request"]]
                ),
                "errors": sum(
                    sum(v for k, v in r["errors"].items()) + r["unexpected"] for r in runs
                ),
                "peak_rss_mib": [max(p[i] for p in peaks) for i in range(len(peaks[0]))]
                if peaks
                else [],
                "loadavg": [r["loadavg_before"][0] for r in runs],
            }
        )
    index = {
        (s["setup"], s["backend"], s["scenario"], s["concurrency"], s["target"]): s for s in summary
    }
    for s in summary:
        if s["target"] != "app" or s["rps_median"] is None:
            continue
        ceiling = index.get((s["setup"], s["backend"], "dashboard", s["concurrency"], "ceiling"))
        peer = index.get((s["setup"], s["backend"], s["scenario"], s["concurrency"], "peer"))
        if ceiling and ceiling["rps_median"]:
            s["vs_ceiling"] = round(s["rps_median"] / ceiling["rps_median"], 3)
        if peer and peer["rps_median"]:
            s["vs_peer"] = round(s["rps_median"] / peer["rps_median"], 2)
    result = {
        "meta": meta,
        "summary": summary,
        "burst": _burst_summary(bursts),
        "soak": soaks,
        "runs": records,
        "burst_runs": bursts,
    }
    result["targets"] = check_targets(result)
    return result


def _burst_summary(bursts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for backend in sorted({b["backend"] for b in bursts}):
        rows = [b for b in bursts if b["backend"] == backend]
        valid = [b for b in rows if not b["void"]]
        peaks = [b["peak_rss_mib"] for b in rows if b["peak_rss_mib"]]
        out.append(
            {
                "backend": backend,
                "rounds": len(rows),
                "void_rounds": len(rows) - len(valid),
                "reads_concurrency": rows[0]["reads_concurrency"],
                "logins_concurrency": rows[0]["logins_concurrency"],
                "baseline_p99_ms": _median([b["baseline_p99_ms"] for b in valid]),
                "burst_reads_p99_ms": _median([b["burst_reads_p99_ms"] for b in valid]),
                "p99_ratio": _median([b["p99_ratio"] for b in valid if b["p99_ratio"]]),
                "burst_logins_rps": _median([b["burst_logins_rps"] for b in valid]),
                "peak_rss_mib": [max(p[i] for p in peaks) for i in range(len(peaks[0]))]
                if peaks
                else [],
                "errors": sum(b["errors"] for b in rows),
            }
        )
    return out


def _cell(result: dict[str, Any], backend: str, scenario: str, c: int, target: str) -> Any:
    for s in result["summary"]:
        if (s["setup"], s["backend"], s["scenario"], s["concurrency"], s["target"]) == (
            "B",
            backend,
            scenario,
            c,
            target,
        ):
            return s
    return None


def check_targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets on set-up B, each with the measured value and reached/not."""
    t = TARGETS
    checks: list[dict[str, Any]] = []

    def add(backend: str, name: str, value: Any, goal: str, ok: bool | None) -> None:
        checks.append(
            {"backend": backend, "target": name, "measured": value, "goal": goal, "reached": ok}
        )

    for backend in sorted({s["backend"] for s in result["summary"] if s["setup"] == "B"}):
        dash = _cell(result, backend, "dashboard", 64, "app")
        if dash and dash["rps_median"] is not None:
            add(
                backend,
                "dashboard req/s, c=64",
                dash["rps_median"],
                f"≥ {t['dashboard_rps']:.0f}",
                dash["rps_median"] >= t["dashboard_rps"],
            )
            if dash.get("vs_peer") is not None:
                add(
                    backend,
                    "dashboard ÷ peer, c=64",
                    dash["vs_peer"],
                    f"≥ {t['dashboard_vs_peer']}",
                    dash["vs_peer"] >= t["dashboard_vs_peer"],
                )
            add(
                backend,
                "dashboard p99 ms, c=64",
                dash["p99_ms"],
                f"< {t['dashboard_p99_ms']:.0f}",
                dash["p99_ms"] < t["dashboard_p99_ms"],
            )
        signin = _cell(result, backend, "signin", 64, "app")
        if signin and signin.get("vs_ceiling") is not None:
            add(
                backend,
                "sign-in page ÷ ceiling, c=64",
                signin["vs_ceiling"],
                f"≥ {t['signin_vs_ceiling']}",
                signin["vs_ceiling"] >= t["signin_vs_ceiling"],
            )
        create = _cell(result, backend, "task_create", 64, "app")
        if create:
            add(
                backend,
                "task create req/s, c=64 (0 errors)",
                create["rps_median"],
                f"≥ {t['create_rps']:.0f}, 0 errors",
                create["rps_median"] is not None
                and create["rps_median"] >= t["create_rps"]
                and create["errors"] == 0,
            )
            add(
                backend,
                "task create p99 ms, c=64",
                create["p99_ms"],
                f"< {t['create_p99_ms']:.0f}",
                create["p99_ms"] is not None and create["p99_ms"] < t["create_p99_ms"],
            )
        login = _cell(result, backend, "login", 16, "app")
        if login:
            add(
                backend,
                "login/s, c=16",
                login["rps_median"],
                f"≥ {t['login_rps']:.0f}",
                login["rps_median"] is not None and login["rps_median"] >= t["login_rps"],
            )
    for burst in result["burst"]:
        peak = max(burst["peak_rss_mib"], default=None)
        add(
            burst["backend"],
            "peak RSS per worker in a login burst, MiB",
            peak,
            f"≤ {t['burst_rss_mib']:.0f}",
            peak is not None and peak <= t["burst_rss_mib"],
        )
        add(
            burst["backend"],
            "signed-in p99 during logins ÷ alone",
            burst["p99_ratio"],
            f"≤ {t['burst_p99_ratio']}",
            burst["p99_ratio"] is not None and burst["p99_ratio"] <= t["burst_p99_ratio"],
        )
    for soak in result["soak"]:
        peak = max(soak.get("steady_peak_rss_mib") or soak["peak_rss_mib"], default=None)
        growth = max(soak["growth_mib"], default=None)
        add(
            soak["backend"],
            f"steady RSS per worker over {soak['requests']} requests (after the first run), MiB",
            peak,
            f"≤ {t['soak_rss_mib']:.0f}",
            peak is not None and peak <= t["soak_rss_mib"],
        )
        add(
            soak["backend"],
            "RSS growth first → last soak run, MiB",
            growth,
            f"≤ {t['soak_growth_mib']:.0f} (no growth)",
            growth is not None and growth <= t["soak_growth_mib"],
        )
    return checks


# -- Markdown ------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown(result: dict[str, Any]) -> str:
    """The result as Markdown: machine, one table per set-up × database, burst, soak, targets."""
    meta = result["meta"]
    m = meta["machine"]
    opts = meta["options"]
    lines = [
        f"Measured {meta['started']} on {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, "
        f"Python {m['python']}, Granian {m['granian']}, {m['wrk']}. "
        f"Load average at start {meta['loadavg_start']}, at end {meta.get('loadavg_end')}. "
        f"Median of {opts['runs']} runs × {opts['seconds']} s after {opts['warmup']} s warm-up; "
        f"seed {opts['seed']['users']} users × {opts['seed']['tasks']} tasks.",
        "",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in result["summary"]:
        groups.setdefault((s["setup"], s["backend"]), []).append(s)
    for (setup, backend), cells in groups.items():
        lines += [
            f"**Set-up {setup}** ({meta['setups'].get(setup, '')}), **{backend}** — req/s",
            "",
            "| scenario | c | app req/s (min–max) | app p50 / p99 ms | errors | peak RSS MiB "
            "| CPU ms/req app / peer | peer req/s | peer p99 ms | ceiling req/s "
            "| app ÷ ceiling | app ÷ peer |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        ]
        by = {(c["scenario"], c["concurrency"], c["target"]): c for c in cells}
        order = [name for name in BY_NAME if any(c["scenario"] == name for c in cells)]
        for name in order:
            for conc in sorted({c["concurrency"] for c in cells if c["scenario"] == name}):
                app = by.get((name, conc, "app"))
                peer = by.get((name, conc, "peer"))
                ceiling = by.get(("dashboard", conc, "ceiling"))
                if not app:
                    continue
                lines.append(
                    f"| {BY_NAME[name].title} | {conc} "
                    f"| {_fmt(app['rps_median'])} ({_fmt(app['rps_min'])}–{_fmt(app['rps_max'])}) "
                    f"| {_fmt(app['p50_ms'], 1)} / {_fmt(app['p99_ms'], 1)} "
                    f"| {app['errors']}{' (' + str(app['void_runs']) + ' void)' if app['void_runs'] else ''} "
                    f"| {', '.join(str(x) for x in app['peak_rss_mib'])} "
                    f"| {_fmt(app['cpu_ms_per_request'], 2)} / "
                    f"{_fmt(peer['cpu_ms_per_request'], 2) if peer else '—'} "
                    f"| {_fmt(peer['rps_median']) if peer else '—'} "
                    f"| {_fmt(peer['p99_ms'], 1) if peer else '—'} "
                    f"| {_fmt(ceiling['rps_median']) if ceiling else '—'} "
                    f"| {_fmt(app.get('vs_ceiling'), 2) if app.get('vs_ceiling') is not None else '—'} "
                    f"| {_fmt(app.get('vs_peer'), 2) if app.get('vs_peer') is not None else '—'} |"
                )
        lines.append("")
    for b in result["burst"]:
        lines += [
            f"**Login burst** (set-up B, {b['backend']}): dashboard at c={b['reads_concurrency']} "
            f"p99 {_fmt(b['baseline_p99_ms'], 1)} ms alone → {_fmt(b['burst_reads_p99_ms'], 1)} ms "
            f"while logins run at c={b['logins_concurrency']} ({_fmt(b['burst_logins_rps'], 1)} "
            f"logins/s); peak RSS per worker {', '.join(str(x) for x in b['peak_rss_mib'])} MiB; "
            f"errors {b['errors']}.",
            "",
        ]
    for s in result["soak"]:
        lines += [
            f"**Soak** (set-up B, {s['backend']}, 90/10 mix at c={s['concurrency']}, "
            f"{s['requests']:,} requests): RSS per worker {s['rss_first_mib']} MiB after the first "
            f"run → {s['rss_last_mib']} MiB at the end (growth {s['growth_mib']} MiB), peak "
            f"{s.get('steady_peak_rss_mib', s['peak_rss_mib'])} MiB after the first run "
            f"({s['peak_rss_mib']} MiB including it).",
            "",
        ]
    if result["targets"]:
        lines += [
            "**Targets** (set-up B)",
            "",
            "| database | target | goal | measured | reached |",
            "|---|---|---|--:|---|",
        ]
        for t in result["targets"]:
            mark = {True: "yes", False: "**no**", None: "—"}[t["reached"]]
            lines.append(
                f"| {t['backend']} | {t['target']} | {t['goal']} | {_fmt(t['measured'], 2)} | {mark} |"
            )
        lines.append("")
    return "\n".join(lines)


def write(result: dict[str, Any], output: Path, *, update_readme: bool) -> tuple[Path, Path]:
    """Write ``<stamp>.json`` and ``<stamp>.md`` (and ``latest.md``) under ``output``; put the
    table into README.md between its markers when ``update_readme``."""
    output.mkdir(parents=True, exist_ok=True)
    stamp = result["meta"]["started"].replace(":", "").replace("+0000", "Z")
    json_path = output / f"{stamp}.json"
    md_path = output / f"{stamp}.md"
    json_path.write_text(json.dumps(result, indent=1, default=str) + "\n")
    text = markdown(result)
    md_path.write_text(text)
    (output / "latest.md").write_text(text)
    if update_readme and README.exists():
        readme = README.read_text()
        block = f"{README_START}\n{text}\n{README_END}"
        pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
        if pattern.search(readme):
            README.write_text(pattern.sub(lambda _m: block, readme))
    return json_path, md_path
