"""Executors: local `sgbench run` processes, N at a time, or a Slurm job array (submitit)."""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..checkpoint import stop_requested
from ..errors import UserError
from ..progress import GridStatus
from ..files import open_new_or_own, own_folder, write_atomic
from .state import EXIT_MARK, RUNNING_MARK, holder_alive


def _sgbench_cmd(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "sgbench", *argv]


def _start(folder: Path) -> None:
    own_folder(folder)
    (folder / EXIT_MARK).unlink(missing_ok=True)


def claim(folder: Path) -> bool:
    """Take the job: its running mark, created atomically; False when a live sweep (or its job)
    holds it. A mark whose holder and job are both dead is stale and taken over."""
    own_folder(folder)  # a job's folder: never a link planted to elsewhere
    mark = folder / RUNNING_MARK
    for _ in range(2):
        try:
            fd = os.open(mark, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if holder_alive(mark):
                return False
            mark.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump({"holder": os.getpid()}, fh)
        return True
    return False


def _finish(folder: Path, returncode: int) -> None:
    write_atomic(folder / EXIT_MARK, json.dumps({"returncode": returncode}))
    (folder / RUNNING_MARK).unlink(missing_ok=True)


class LocalExecutor:
    """Runs jobs as `sgbench run` processes, ``workers`` at a time. Each worker owns a slot: a
    GPU (CUDA_VISIBLE_DEVICES, slots wrap around the GPUs: several jobs share one when there are
    more workers than GPUs) when the sweep uses CUDA, and an equal share of the CPU threads.
    On a stop signal every running job gets one SIGTERM (it finishes its step and writes a
    checkpoint and an `interrupted` record) and the jobs not yet started stay pending."""

    def __init__(self, workers: int, gpus: list[int]):
        self.workers, self.gpus = workers, gpus
        self.stopping = threading.Event()
        self.children: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.slots: queue.Queue[int] = queue.Queue()
        for slot in range(workers):
            self.slots.put(slot)

    def _env(self, slot: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(self.gpus[slot % len(self.gpus)])
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.workers))
        return env

    def _run(self, argv: list[str], folder: Path) -> bool:
        """One job in a free slot; False when the sweep was stopped before it started."""
        slot = self.slots.get()
        try:
            with self.lock:
                # (a job another sweep finished since this one made its plan: `sgbench run` finds
                # its record of the same run key and says "already finished" at once)
                if self.stopping.is_set() or not claim(folder):
                    return False
                _start(folder)
                log = open_new_or_own(folder / "log.txt", "a")
                # its own session: a terminal's Ctrl-C reaches the sweep, which stops the jobs
                child = subprocess.Popen(_sgbench_cmd(argv), stdout=log, stderr=subprocess.STDOUT,
                                         env=self._env(slot), start_new_session=True)
                self.children.add(child)
            write_atomic(folder / RUNNING_MARK, json.dumps({"holder": os.getpid(),
                                                            "pid": child.pid}))
            returncode = child.wait()
            log.close()
            with self.lock:
                self.children.discard(child)
            _finish(folder, returncode)
            return True
        finally:
            self.slots.put(slot)

    def stop(self) -> None:
        with self.lock:
            self.stopping.set()
            for child in self.children:
                child.send_signal(signal.SIGTERM)

    def run(self, tasks: list[tuple[list[str], Path]], on_done: Callable[[int], None]) -> None:
        def work(index: int) -> None:
            if self._run(*tasks[index]):
                on_done(index)

        status = GridStatus("sweep", len(tasks))
        with ThreadPoolExecutor(self.workers) as pool:
            futures = [pool.submit(work, i) for i in range(len(tasks))]
            while not all(f.done() for f in futures):
                try:
                    time.sleep(0.2)
                except KeyboardInterrupt:  # a second Ctrl-C: the jobs are already stopping
                    pass
                if stop_requested() and not self.stopping.is_set():
                    self.stop()
                status.tell(sum(f.done() for f in futures), len(self.children))
            for f in futures:
                f.result()


def run_in_job(argv: list[str], folder: str) -> int:
    """What a Slurm job runs: one `sgbench run`, its output appended to the job's log."""
    _start(Path(folder))
    with open(Path(folder) / "log.txt", "a") as log:
        returncode = subprocess.run(_sgbench_cmd(argv), stdout=log,
                                    stderr=subprocess.STDOUT).returncode
    _finish(Path(folder), returncode)
    return returncode


@dataclass
class SlurmOptions:
    partition: str | None = None
    time_min: int = 240
    gpus: int = 1
    cpus: int = 8
    cluster: str = "slurm"  # "local": submitit's LocalExecutor, to try the path on this machine


def submit_slurm(tasks: list[tuple[list[str], Path]], out: Path, name: str,
                 options: SlurmOptions) -> list[Any]:
    """Submit every task as one Slurm job array; returns submitit's job handles."""
    try:
        import submitit
    except ImportError:
        raise UserError("--executor slurm needs submitit: pip install 'sgbench[slurm]'") from None
    executor = submitit.AutoExecutor(folder=out / ".submitit", cluster=options.cluster)
    params: dict[str, Any] = {"name": f"sgbench-{name}", "timeout_min": options.time_min,
                              "cpus_per_task": options.cpus, "tasks_per_node": 1, "nodes": 1}
    if options.cluster == "slurm":
        params["gpus_per_node"] = options.gpus
        if options.partition:
            params["slurm_partition"] = options.partition
    executor.update_parameters(**params)
    for _, folder in tasks:
        own_folder(folder)
    handles = executor.map_array(run_in_job, [argv for argv, _ in tasks],
                                 [str(folder) for _, folder in tasks])
    for handle, (_, folder) in zip(handles, tasks):
        write_atomic(folder / RUNNING_MARK, json.dumps({"slurm_job": handle.job_id}))
    return handles


def wait_slurm(handles: list[Any], tasks: list[tuple[list[str], Path]],
               on_done: Callable[[int], None]) -> None:
    for index, handle in enumerate(handles):
        try:
            handle.result()
        except Exception as exc:  # the job died outside `sgbench run` (time limit, node)
            with open(tasks[index][1] / "log.txt", "a") as log:
                log.write(f"slurm job failed: {exc}\n")
            _finish(tasks[index][1], -1)
        on_done(index)
