"""How a parallel rebuild starts its workers: the program's main script is imported by the
program only (neither the fork server the workers are forked from nor a worker runs it
again: they need nothing from it, and the `dealreg` script's CLI cost 0.4 CPU-second per
rebuild), and the fork server a rebuild started is gone when it returns (the next rebuild
pays for its own start-up, inside its measured time). Run as a real program: the main
script matters."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = textwrap.dedent('''
    import os
    import sys

    sys.path.insert(0, os.environ["CHECKOUT"])  # as the benchmarks put their checkout first
    with open(os.environ["MARKER"], "a") as marker:
        services = getattr(sys.modules.get("services"), "__file__", None)
        marker.write(f"{__name__} {os.getpid()} {services}\\n")

    if __name__ == "__main__":
        import asyncio
        from pathlib import Path

        from tests.integration.projections.projection_support import (
            rebuild_a_workload_in_processes,
        )

        async def main() -> None:
            records = await rebuild_a_workload_in_processes(
                Path(os.environ["DATA"]), "start", size=600, seed=5, accounts=40, partners=8,
                batch_records=100)
            from multiprocessing import forkserver

            server = getattr(forkserver._forkserver, "_forkserver_pid", None)
            assert server is None, f"the fork server {server} still runs"
            print("rebuilt", records)

        asyncio.run(main())
''')


def test_a_parallel_rebuild_does_not_import_the_main_script_again_in_its_workers(
    tmp_path: Path,
) -> None:
    """The program puts its checkout on `sys.path` itself (no PYTHONPATH): the fork server
    and its workers import the project from that checkout too, not from wherever it is
    installed (each import's source path is in `PYTHONVERBOSE`'s lines)."""
    script = tmp_path / "rebuild_program.py"
    script.write_text(SCRIPT)
    marker = tmp_path / "imports.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CHECKOUT=str(ROOT), MARKER=str(marker), DATA=str(tmp_path), PYTHONVERBOSE="1")
    done = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rebuilt" in done.stdout
    lines = [line.split() for line in marker.read_text().splitlines()]
    # The program itself only: neither the fork server nor the workers ran it.
    assert [name for name, _, _ in lines] == ["__main__"], lines
    # Every process's project modules are this checkout's (the program's, the fork
    # server's, the workers'): `# code object from '<path>'` for each module loaded.
    loaded = [line.removeprefix("# code object from").strip(" '")
              for line in done.stderr.splitlines() if line.startswith("# code object from")]
    project = [Path(p) for p in loaded
               if "/services/projections/" in p or "/shared/readmodel/" in p]
    assert project, done.stderr[-3000:]
    assert all(p.resolve().is_relative_to(ROOT) for p in project), sorted(set(project))


SHADOWED = textwrap.dedent('''
    import asyncio
    import os
    import sys
    from pathlib import Path

    sys.path.insert(0, os.environ["CHECKOUT"])

    from tests.integration.projections.projection_support import (
        rebuild_a_workload_in_processes,
    )

    async def main() -> None:
        records = await rebuild_a_workload_in_processes(
            Path(os.environ["DATA"]), "cwd", size=300, seed=3, accounts=20, partners=5,
            batch_records=50)
        print("rebuilt", records)

    if __name__ == "__main__":
        asyncio.run(main())
''')


def test_rebuild_workers_import_the_programs_modules_not_a_checkout_in_the_working_directory(
    tmp_path: Path,
) -> None:
    """An operator runs a checkout's program from inside another checkout (cwd /work/main,
    code from a worktree): the program never imports from its working directory, so its
    workers must not either (the fork server, started with `-c`, put cwd first)."""
    program = tmp_path / "program"
    program.mkdir()
    (program / "rebuild_program.py").write_text(SHADOWED)
    elsewhere = tmp_path / "elsewhere"
    for package in ("services", "shared"):
        (elsewhere / package).mkdir(parents=True)
        (elsewhere / package / "__init__.py").write_text(
            "import os\n"
            "open(os.environ['SHADOW'], 'a').write(__name__ + '\\n')\n")
    shadow = tmp_path / "shadow.txt"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(CHECKOUT=str(ROOT), DATA=str(tmp_path), SHADOW=str(shadow))
    done = subprocess.run([sys.executable, str(program / "rebuild_program.py")], env=env,
                          cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rebuilt" in done.stdout
    assert not shadow.exists(), shadow.read_text()


async def test_a_rebuild_with_more_workers_than_the_loops_default_threads_finishes(
    tmp_path: Path,
) -> None:
    """asyncio's default executor has cpu count + 4 threads (6 on two cores): a rebuild
    whose workers each held one in a blocking pipe read left none to send them batches, and
    `--processes 6` hung for good. Here the loop's executor has 3 threads, 6 workers."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from services.projections.adapters.rebuild import rebuild
    from shared.eventlog.embedded import EmbeddedEventLog
    from shared.eventlog.topics import Topics
    from shared.readmodel.store import create_engine, migrate
    from tests.integration.projections.projection_support import append_workload
    from tests.unit.projections.projection_workload import generate

    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=3))
    log = EmbeddedEventLog(tmp_path / "log.sqlite3")
    await log.start()
    topics = Topics.named("threads")
    await log.create_topics(topics.specs(6))
    workload = generate(1500, seed=4, accounts=20, partners=5)
    await append_workload(log, topics, workload)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rm.sqlite3'}")
    try:
        await migrate(engine)
        result = await asyncio.wait_for(
            rebuild(log, engine, topics, batch_records=50, processes=6), timeout=120)
        assert result.records == len(workload.records)
    finally:
        await engine.dispose()
        await log.close()
