"""Planner latency: how long a What-if slider move takes to re-plan and re-render (run:
.venv/bin/python benchmarks/app_latency.py [--sample synthetic] [--moves 8] [--rightsize | --cost-of-capital]).

Drives the real Streamlit app with ``streamlit.testing.v1.AppTest`` (the same script users run) on its
What-if page. After one warm-up run (the forecast is fitted and cached, the base plan solved), it
alternates the demand-growth and spot-share sliders through values not seen before, so every move
re-plans, and it times each rerun. The baseline is a rerun with nothing changed (cached plan), measured in
the same process; the script prints the median seconds of both and their ratio, and the process CPU
seconds per move with the load average (on a shared machine wall time includes waiting for a core).

With ``--rightsize`` the "Rightsize GPU models per team" checkbox is switched on after the warm-up (that first
routing is timed apart) and the moves alternate demand growth (the cached routing is reused) and speed priority
(the cached candidate evaluation is re-ranked, then the routed demand is re-planned).

With ``--cost-of-capital`` the moves alternate demand growth and the "Cost of capital (%/year)" input (11%, 12%, ...),
the finance lever: both re-plan on the cached scenarios (the long-term forecast and the scenarios over the commitment
terms are cached apart from them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from app import state as A

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")
WHATIF_PAGE = "app_pages/whatif.py"


CPU_TIMES: list[float] = []
"""Process CPU seconds of each timed run (all threads: the script thread and HiGHS), in call order."""


def timed_run(at: AppTest) -> float:
    t0, c0 = time.perf_counter(), time.process_time()
    at.run()
    elapsed = time.perf_counter() - t0
    CPU_TIMES.append(time.process_time() - c0)
    if at.exception:
        raise RuntimeError(at.exception[0].value)
    if at.error:
        raise RuntimeError(at.error[0].value)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", default="synthetic")
    parser.add_argument("--moves", type=int, default=8)
    lever = parser.add_mutually_exclusive_group()
    lever.add_argument("--rightsize", action="store_true", help="plan with rightsizing; move growth and speed")
    lever.add_argument("--cost-of-capital", action="store_true", help="move growth and the cost of capital")
    args = parser.parse_args()
    os.environ[A.DEFAULT_SAMPLE_ENV] = args.sample
    at = AppTest.from_file(APP, default_timeout=600)
    t0 = time.perf_counter()
    timed_run(at)  # the default page, then the What-if page (forecast and base plan computed once)
    at.switch_page(WHATIF_PAGE)
    timed_run(at)
    warm = time.perf_counter() - t0
    if args.rightsize:
        at.checkbox(key=A.RIGHTSIZE_KEY).check()
        print(f"rightsizing switched on (first routing + plan): {timed_run(at):.3f} s")
    unchanged = [timed_run(at) for _ in range(3)]
    moves = []
    first_move = len(CPU_TIMES)
    for i in range(args.moves):
        if i % 2 == 0:
            at.slider(key=A.GROWTH_KEY).set_value(5 * (i // 2 + 1))
        elif args.rightsize:
            at.slider(key=A.SPEED_KEY).set_value(min(10 * (i // 2 + 1), 100))
        elif args.cost_of_capital:
            at.number_input(key=A.COST_OF_CAPITAL_KEY).set_value(11.0 + i // 2)
        else:
            at.slider(key=A.SPOT_SHARE_KEY).set_value(35 + 5 * (i // 2))
        moves.append(timed_run(at))
    base, move = statistics.median(unchanged), statistics.median(moves)
    what = (" (rightsized: growth and speed priority moves)" if args.rightsize else
            " (growth and cost-of-capital moves)" if args.cost_of_capital else "")
    print(f"sample {args.sample}{what}: first load {warm:.1f} s (forecast, long-term forecast and scenarios over the "
          "commitment terms fitted and cached, base plan solved)")
    print(f"rerun, nothing changed: median {base:.3f} s over {len(unchanged)}")
    print(f"slider move (re-plan + re-render): median {move:.3f} s, max {max(moves):.3f} s over {len(moves)}")
    print(f"ratio move / unchanged rerun: {move / base:.2f}")
    cpu = CPU_TIMES[first_move:]
    print(f"slider move CPU time (all threads): median {statistics.median(cpu):.3f} s, max {max(cpu):.3f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall time grows with other load)")


if __name__ == "__main__":
    main()
