"""`make soak`: the fault kinds in a loop (shuffled each round) under a steady load for
`--duration` seconds, then the checker. Prints the counts; exits 1 on any discrepancy.

    python -m tests.faults.soak --duration 600 [--rate 6] [--gap 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from tests.faults.campaign import KINDS, Campaign, Report


async def soak(duration: float, rate: float, gap: float) -> Report:
    campaign = Campaign(rate=rate, say=lambda line: print(line, flush=True))
    report = None
    try:
        await campaign.start()
        report = await campaign.run(KINDS, load_seconds_between=gap, duration=duration,
                                    check_timeout=600.0)
        return report
    except BaseException:
        print(campaign.logs_tail(), flush=True)
        raise
    finally:
        await campaign.close(keep_logs=report is None or bool(report.discrepancies))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=6.0, help="registrations per second")
    parser.add_argument("--gap", type=float, default=8.0,
                        help="seconds of load after each recovered fault")
    args = parser.parse_args()
    report = asyncio.run(soak(args.duration, args.rate, args.gap))
    print("\n== soak ==")
    print("\n".join(report.lines()))
    return 1 if report.discrepancies else 0


if __name__ == "__main__":
    sys.exit(main())
