"""Figures of a simulation run, as EMS reports them, and compliance with a response-time standard.

Response time is the call (eTimes.01) to the first unit on scene (eTimes.06); travel time is en route
(eTimes.05) to on scene. Percentiles are nearest-rank (:func:`dispatch.core.stats.percentile`), the method the
NFPA 1710 and ARP reports use.

Standards:

- ``nfpa1710`` (NFPA 1710, 2020 edition, EMS): turnout time (notified -> en route, eTimes.03 -> .05) at most
  60 s and ALS travel time at most 480 s, each for 90 % of the calls (checked as the 90th percentile);
- ``arp`` (England's Ambulance Response Programme), on our priorities: echo as category 1 (mean 7 min, 90th
  centile 15 min), delta as category 2 (mean 18 min, 90th 40 min), charlie as category 3 (90th 120 min), bravo,
  alpha and omega as category 4 (90th 180 min); measured from the call (ARP's clock may start up to 240 s
  later; ours is the stricter reading);
- ``custom:RULE,RULE,...`` with ``RULE = PRIORITIES=SECONDS@STAT``: priorities joined by ``+``, ``STAT`` ``mean``
  or a percentile such as ``90``, on response time; e.g. ``custom:echo+delta=600@90,charlie=1200@mean``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from dispatch.core.errors import InvalidInput
from dispatch.core.stats import percentile
from dispatch.core.types import Capability, Priority
from dispatch.sim.engine import Job, Run

STANDARDS = ("nfpa1710", "arp", "custom:...")


@dataclass(frozen=True)
class Rule:
    label: str
    priorities: frozenset[Priority] | None  # None: every call the measure applies to
    measure: str  # response | travel | turnout
    stat: str  # mean | p<q>
    limit_s: float
    als_only: bool = False

    def applies(self, job: Job) -> bool:
        return (self.priorities is None or job.call.priority in self.priorities) and (
            not self.als_only or job.call.needs is Capability.ALS
        )

    def value(self, jobs: Sequence[Job]) -> tuple[float | None, int]:
        picked = [j for j in jobs if self.applies(j)]
        if self.measure == "turnout":
            # only crews that set out from a standstill have a turnout (a unit already driving has none)
            values = [j.times["05"] - j.times["03"] for j in picked if j.turned_out]
        elif self.measure == "travel":
            values = [j.travel_s for j in picked]
        else:
            values = [j.response_s for j in picked]
        if not values:
            return None, 0
        if self.stat == "mean":
            return fmean(values), len(values)
        return percentile(values, float(self.stat[1:])), len(values)


@dataclass(frozen=True)
class Standard:
    name: str
    rules: tuple[Rule, ...]

    def check(self, run: Run) -> list[dict[str, Any]]:
        out = []
        for r in self.rules:
            value, n = r.value(run.jobs)
            # a call never answered fails every rule that applies to it
            never = sum(r.applies(j) for j in run.unanswered) if r.measure != "turnout" else 0
            out.append(
                {
                    "rule": r.label,
                    "limit_s": r.limit_s,
                    "value_s": None if value is None else round(value, 1),
                    "calls": n,
                    "never_answered": never,
                    "met": False if never else (None if value is None else value <= r.limit_s),
                }
            )
        return out


def _p(*names: str) -> frozenset[Priority]:
    return frozenset(Priority(n) for n in names)


NFPA1710 = Standard(
    "NFPA 1710",
    (
        Rule("turnout <= 60 s (90th percentile)", None, "turnout", "p90", 60.0),
        Rule("ALS travel <= 480 s (90th percentile)", None, "travel", "p90", 480.0, als_only=True),
    ),
)
ARP = Standard(
    "ARP (England)",
    (
        Rule("category 1 (echo) mean <= 7 min", _p("echo"), "response", "mean", 420.0),
        Rule("category 1 (echo) 90th <= 15 min", _p("echo"), "response", "p90", 900.0),
        Rule("category 2 (delta) mean <= 18 min", _p("delta"), "response", "mean", 1080.0),
        Rule("category 2 (delta) 90th <= 40 min", _p("delta"), "response", "p90", 2400.0),
        Rule("category 3 (charlie) 90th <= 120 min", _p("charlie"), "response", "p90", 7200.0),
        Rule(
            "category 4 (bravo, alpha, omega) 90th <= 180 min",
            _p("bravo", "alpha", "omega"),
            "response",
            "p90",
            10800.0,
        ),
    ),
)


def parse_standard(text: str) -> Standard:
    key = text.strip().lower()
    if key == "nfpa1710":
        return NFPA1710
    if key == "arp":
        return ARP
    if not key.startswith("custom:"):
        raise InvalidInput(f"standard {text!r} is not known; allowed: nfpa1710, arp, custom:echo+delta=600@90,...")
    rules = []
    for part in key.removeprefix("custom:").split(","):
        head, _, tail = part.partition("=")
        limit, _, stat = tail.partition("@")
        try:
            prios = frozenset(Priority(p.strip()) for p in head.split("+"))
            limit_s = float(limit)
            stat_key = "mean" if stat.strip() == "mean" else f"p{float(stat):g}"
            if stat_key != "mean" and not 0 < float(stat) <= 100:
                raise ValueError
        except ValueError:
            raise InvalidInput(
                f"custom standard rule {part.strip()!r} is not PRIORITIES=SECONDS@STAT (priorities of "
                f"{', '.join(p.value for p in Priority)} joined by +; STAT mean or a percentile 1..100), "
                "e.g. echo+delta=600@90"
            ) from None
        if not (math.isfinite(limit_s) and limit_s > 0):
            raise InvalidInput(f"custom standard rule {part.strip()!r}: the limit must be more than 0 seconds")
        label = f"{'+'.join(sorted(p.value for p in prios))} {stat_key.replace('p', '', 1)} <= {limit_s:g} s"
        rules.append(Rule(label, prios, "response", stat_key, limit_s))
    return Standard("custom", tuple(rules))


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"calls": 0, "mean_s": None, "median_s": None, "p90_s": None}
    return {
        "calls": len(values),
        "mean_s": round(fmean(values), 1),
        "median_s": round(percentile(values, 50) or 0.0, 1),
        "p90_s": round(percentile(values, 90) or 0.0, 1),
    }


def summarize(run: Run, standard: Standard | None = None) -> dict[str, Any]:
    """Response and travel times per priority, waits, utilisation, and the standard's checks."""
    jobs = run.jobs
    per: dict[str, Any] = {}
    for p in Priority:
        mine = [j for j in jobs if j.call.priority is p]
        if mine:
            per[p.value] = {
                "response": _summary([j.response_s for j in mine]),
                "travel": _summary([j.travel_s for j in mine]),
            }
    waited = [j for j in jobs if j.waited]
    busy = {cs: b / run.span_s if run.span_s > 0 else 0.0 for cs, (b, _) in run.units.items()}
    out: dict[str, Any] = {
        "scenario": run.scenario.name,
        "policy": run.policy,
        "units": len(run.units),
        "stations": len(run.scenario.stations),
        "calls": len(jobs),
        "days": round(run.span_s / 86400.0, 2),
        "response": _summary([j.response_s for j in jobs]),
        "by_priority": per,
        "waited_share": round(len(waited) / len(jobs), 4) if jobs else 0.0,
        # notified - call for the calls that waited: how long they stood in the queue (processing included)
        "waited_mean_s": round(fmean(j.times["03"] - j.times["01"] for j in waited), 1) if waited else None,
        "utilisation_mean": round(fmean(busy.values()), 4) if busy else 0.0,
        "utilisation_max": round(max(busy.values()), 4) if busy else 0.0,
        "transported_share": round(sum(j.hospital is not None for j in jobs) / len(jobs), 4) if jobs else 0.0,
        "never_answered": len(run.unanswered),
        "skipped": run.skipped,
    }
    if standard is not None:
        out["standard"] = {"name": standard.name, "checks": standard.check(run)}
    return out


def plot(runs: Sequence[tuple[str, Run]], path: str, *, limit_s: float | None = None) -> None:
    """Response-time curves (share of calls answered within t) of several runs in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for label, run in runs:
        values = sorted(j.response_s / 60.0 for j in run.jobs)
        if values:
            ax.step(values, [(i + 1) / len(values) for i in range(len(values))], where="post", label=label)
    if limit_s is not None:
        ax.axvline(limit_s / 60.0, color="grey", linestyle="--", linewidth=1, label=f"{limit_s / 60:g} min")
    ax.axhline(0.9, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("response time: call to first unit on scene (min)")
    ax.set_ylabel("share of calls answered within")
    ax.set_ylim(0, 1.0)
    tails = [percentile([j.response_s / 60.0 for j in run.jobs], 99.5) for _, run in runs if run.jobs]
    ax.set_xlim(0, max([t for t in tails if t is not None] + [limit_s / 60.0 if limit_s else 0.0]) * 1.1 or None)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title("Simulated response times (road graph © OpenStreetMap contributors)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(summaries: Sequence[dict[str, Any]]) -> str:
    """The runs side by side, one column each: what a planner compares."""

    def minutes(v: float | None) -> str:
        return "-" if v is None else f"{v / 60:.1f} min"

    rows: list[tuple[str, list[str]]] = [
        ("scenario", [s["scenario"] for s in summaries]),
        ("dispatch policy", [s["policy"].replace("_", " ") for s in summaries]),
        ("units / stations", [f"{s['units']} / {s['stations']}" for s in summaries]),
        ("calls answered", [f"{s['calls']:,}" for s in summaries]),
        ("never answered (no unit able)", [f"{s['never_answered']:,}" for s in summaries]),
        ("response mean", [minutes(s["response"]["mean_s"]) for s in summaries]),
        ("response median", [minutes(s["response"]["median_s"]) for s in summaries]),
        ("response 90th", [minutes(s["response"]["p90_s"]) for s in summaries]),
    ]
    for p in Priority:
        if any(p.value in s["by_priority"] for s in summaries):
            rows.append(
                (
                    f"  {p.value}: mean / 90th",
                    [
                        "-"
                        if p.value not in s["by_priority"]
                        else f"{minutes(s['by_priority'][p.value]['response']['mean_s'])} / "
                        f"{minutes(s['by_priority'][p.value]['response']['p90_s'])}"
                        for s in summaries
                    ],
                )
            )
    rows += [
        ("waited for a free unit", [f"{s['waited_share']:.1%}" for s in summaries]),
        (
            "unit utilisation mean / max",
            [f"{s['utilisation_mean']:.0%} / {s['utilisation_max']:.0%}" for s in summaries],
        ),
    ]
    checks = [s.get("standard", {}).get("checks", []) for s in summaries]
    for i, check in enumerate(checks[0] if checks else []):
        cells = []
        for c in checks:
            v = c[i]
            mark = "n/a" if v["met"] is None else ("met" if v["met"] else "NOT met")
            if v.get("never_answered"):
                mark += f" ({v['never_answered']} never answered)"
            cells.append(f"{minutes(v['value_s'])} {mark}")
        rows.append((check["rule"], cells))
    width = max(len(label) for label, _ in rows)
    cols = [max(len(r[1][k]) for r in rows) for k in range(len(summaries))]
    lines = [
        f"{label:<{width}}  " + "  ".join(f"{v:>{cols[k]}}" for k, v in enumerate(values)) for label, values in rows
    ]
    return "\n".join(lines)
