"""HumanEval (Chen et al., 2021): 164 Python functions, each a prompt (signature and docstring), a canonical solution
and the unit tests that check it.

HumanEval is a completion task, and both metrics read it as one: the prompt is the text before the answer, with no
instruction template. ``humaneval_loss`` (the CPU suite): the loss of the canonical solution (the function's body)
after its prompt. ``humaneval_pass1`` (the GPU suite): a greedy completion of the prompt, cut at the
Codex paper's stop sequences, counted as passed when the task's tests exit cleanly in a sandboxed subprocess
(:func:`run_sandboxed`: its own empty folder, a timeout, memory, CPU and file-size limits, no network, dangerous
functions disabled as human-eval's ``reliability_guard`` does); pass@1 of one greedy sample is the share passed.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tunesift.errors import InputError
from tunesift.models.generate import generate

#: Chen et al. (2021), section 2.3: a completion ends where the model starts another top-level statement.
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
#: Put before every program: its limits (set by the program's own interpreter first thing, so no ``preexec_fn``,
#: which is unsafe beside the threads that run programs side by side), then no network, no processes, no deleting,
#: as human-eval's execution.reliability_guard.
GUARD = """\
import os, resource, shutil, socket, subprocess
resource.setrlimit(resource.RLIMIT_CPU, ({cpu}, {cpu}))
resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
def _refused(*args, **kwargs):
    raise PermissionError("refused in the HumanEval sandbox")
socket.socket = socket.create_connection = socket.socketpair = _refused
for _name in ("system", "kill", "killpg", "fork", "forkpty", "execv", "execve", "execvp", "spawnv", "remove",
              "unlink", "rmdir", "removedirs", "rename", "renames", "truncate", "putenv", "chmod", "chown", "setuid"):
    if hasattr(os, _name):
        setattr(os, _name, _refused)
shutil.rmtree = shutil.move = shutil.chown = _refused
subprocess.Popen = subprocess.run = subprocess.call = _refused
del _name
"""


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str
    canonical_solution: str
    test: str
    entry_point: str

    def program(self, completion: str) -> str:
        """The prompt, its completion, the tests and the call that runs them (human-eval's check program)."""
        return f"{self.prompt}{completion}\n\n{self.test}\n\ncheck({self.entry_point})\n"


def read_humaneval(path: str | Path, n: int | None = None) -> list[Task]:
    """The first ``n`` tasks of ``HumanEval.jsonl.gz`` (all when None), in file order."""
    from tunesift.data.evalsets import jsonl_records

    tasks = []
    for number, record in jsonl_records(Path(path)):
        try:
            tasks.append(Task(*(record[k] for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point"))))
        except KeyError as err:
            raise InputError(f"not a HumanEval task: missing {err}", path=path, record=number) from None
    return tasks[:n]


class Completion:
    """The template of a completion task: the prompt is the whole text before the answer."""

    def prompt(self, instruction: str, input: str = "", history: Sequence[Any] = (), system: str = "") -> str:
        return instruction


def loss_pairs(tasks: Sequence[Task]) -> list[tuple[str, str]]:
    """(prompt, canonical solution) for ``humaneval_loss``, read with :class:`Completion`."""
    return [(t.prompt, t.canonical_solution) for t in tasks]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al.'s unbiased pass@k from ``n`` samples of which ``c`` pass: 1 - C(n - c, k) / C(n, k)."""
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@functools.cache
def _no_network_prefix() -> tuple[str, ...]:
    """``unshare`` into a network namespace of its own where this machine allows it (as a user, else as root);
    none where it does not (the guard still refuses sockets)."""
    found = shutil.which("unshare")
    for prefix in (("-r", "-n"), ("-n",)):
        if found and subprocess.run([found, *prefix, "true"], capture_output=True, check=False).returncode == 0:
            return (found, *prefix)
    return ()


def isolation() -> str:
    """How the sandbox keeps programs off the network here: a namespace, or the guard alone."""
    return "network namespace" if _no_network_prefix() else "guard (no network namespace on this machine)"


def run_sandboxed(program: str, timeout: float = 3.0, memory_bytes: int = 1 << 30) -> str:
    """Run ``program`` in a fresh interpreter in an empty temporary folder: ``passed`` (exit 0), ``failed`` (an
    error, a failed assertion or a limit hit) or ``timeout`` (the whole process group is killed)."""
    with tempfile.TemporaryDirectory(prefix="tunesift-humaneval-") as folder:
        path = Path(folder) / "program.py"
        path.write_text(GUARD.format(cpu=math.ceil(timeout) + 1, memory=memory_bytes) + program, encoding="utf-8")
        command = [*_no_network_prefix(), sys.executable, "-I", "-B", str(path)]
        process = subprocess.Popen(command, cwd=folder, env={"PATH": os.defpath, "HOME": folder},
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)  # fmt: skip
        try:
            return "passed" if process.wait(timeout=timeout) == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return "timeout"


def pass1(lm: Any, tasks: Sequence[Task], max_new_tokens: int = 512, timeout: float = 3.0,
          batch_size: int = 8) -> dict[str, Any]:  # fmt: skip
    """pass@1 of one greedy completion a task: the share whose tests pass in the sandbox."""
    completions = generate(lm, [t.prompt for t in tasks], max_new_tokens, stop=STOP, batch_size=batch_size)
    return score_completions(tasks, completions, timeout)


def score_completions(tasks: Sequence[Task], completions: Sequence[str], timeout: float = 3.0) -> dict[str, Any]:
    """Each completion's program run in the sandbox (a few at once); pass@1 over the tasks."""
    programs = [t.program(c) for t, c in zip(tasks, completions, strict=True)]
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        status = list(pool.map(functools.partial(run_sandboxed, timeout=timeout), programs))
    passed = [int(s == "passed") for s in status]
    return {"accuracy": float(np.mean([pass_at_k(1, p, 1) for p in passed])) if passed else math.nan,
            "n": len(tasks), "items": passed, "timeouts": status.count("timeout"), "status": status,
            "completions": list(completions), "isolation": isolation()}  # fmt: skip
