"""Kaldi-style job launchers: run N copies of a command, each with its own log.

Interface (as Kaldi's run.pl / slurm.pl):

    launcher [options] JOB=1:N log/name.JOB.log command arg ... JOB ...
    launcher [options] log/name.log command arg ...

Every ``JOB`` in the log path and in the command is replaced by the job index.
The command words are joined with spaces, as Kaldi's run.pl joins them (a word with white space
is quoted: in double quotes, or single quotes when it holds a double quote), and run by ``bash -c``
with ``pipefail`` (so quoted pipes work). Each log starts with the command and ends
with its exit code and run time. On failure the launcher exits 1 and says which
jobs failed, showing the tail of the first failing log.

Backends: ``local`` runs the jobs on this machine, at most ``--max-jobs-run`` at
a time; ``slurm`` submits one job array with ``sbatch --wait``.

Multi-node training (slurm, ``--num-nodes N``): each job gets N nodes with one task per GPU
(``--gpu G``: G tasks per node); ``srun`` starts the command once per task with the variables
torchrun would set (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``),
so our trainer and ESPnet (``--multiprocessing_distributed false``) form one process group.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

JOB_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?::(\d+))?$")  # JOB=1:N, or JOB=3 for one job
LOOKS_LIKE_RANGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^/]*:")  # JOB=1:N with N not a number


def kaldi_join(words: list[str]) -> str:
    """The command line of ``words`` as Kaldi's run.pl writes it: a word without white space as it is
    (so ``|`` and ``>`` stay shell operators), one with white space in double quotes, or in single
    quotes when it holds a double quote."""
    out = []
    for w in words:
        if re.fullmatch(r"\S+", w):
            out.append(w)
        elif '"' in w:
            out.append(f"'{w}'")
        else:
            out.append(f'"{w}"')
    return " ".join(out)


@dataclass
class JobSpec:
    """What to run: ``command`` and ``log`` still contain the job variable."""

    var: str | None
    first: int
    last: int
    log: str
    command: str
    max_jobs_run: int = 32
    num_threads: int = 1
    mem: str | None = None
    gpu: int = 0
    num_nodes: int = 1
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    config: str | None = None

    def indices(self) -> list[int]:
        return list(range(self.first, self.last + 1))

    def expand(self, text: str, index: int) -> str:
        return text if self.var is None else re.sub(rf"\b{self.var}\b", str(index), text)


def parse_args(argv: list[str], prog: str) -> JobSpec:
    p = argparse.ArgumentParser(
        prog=prog,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{prog} [options] [JOB=1:N] LOG COMMAND ...",
    )
    p.add_argument("--max-jobs-run", type=int, default=32, help="run at most this many jobs at once (local)")
    p.add_argument("--num-threads", type=int, default=1,
                   help="CPU threads per job (OMP_NUM_THREADS; slurm --cpus-per-task)")
    p.add_argument("--mem", default=None, help="memory per job, e.g. 4G (slurm --mem; ignored locally)")
    p.add_argument("--gpu", type=int, default=0,
                   help="GPUs per job (slurm --gres=gpu:N; locally CUDA_VISIBLE_DEVICES is left as is)")
    p.add_argument("--num-nodes", type=int, default=1,
                   help="nodes per job (slurm only): srun starts one process per GPU on each, as torchrun would")
    p.add_argument("--time", default=None, help="time limit per job (slurm --time), e.g. 4:00:00")
    p.add_argument("--partition", "-p", default=None, help="Slurm partition (slurm --partition)")
    p.add_argument("--account", default=None, help="Slurm account (slurm --account)")
    p.add_argument("--config", default=None,
                   help="a Kaldi slurm.conf (conf/slurm.conf): 'command sbatch ...', 'option NAME=VALUE args', "
                        "'option NAME=* args with $0', 'default NAME=VALUE'; it then maps mem, num_threads, gpu, "
                        "time and max_jobs_run to sbatch options as Kaldi's slurm.pl does")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="[JOB=1:N] LOG COMMAND ...")
    args = p.parse_args(argv)
    rest = list(args.rest)
    var, first, last = None, 1, 1
    if rest and JOB_RANGE.match(rest[0]):
        m = JOB_RANGE.match(rest.pop(0))
        var, first = m.group(1), int(m.group(2))
        last = int(m.group(3)) if m.group(3) is not None else first
        if last < first:
            p.error(f"empty job range {var}={first}:{last}")
    elif rest and LOOKS_LIKE_RANGE.match(rest[0]):
        p.error(f"bad job range '{rest[0]}': expected VAR=FIRST:LAST with numbers, e.g. JOB=1:4")
    if len(rest) < 2:
        p.error("need a log file and a command")
    log, cmd = rest[0], rest[1:]
    if var is not None and var not in log:
        p.error(f"the log file '{log}' must contain {var} so that the jobs do not share one log")
    command = kaldi_join(cmd)
    return JobSpec(var, first, last, log, command, args.max_jobs_run, args.num_threads, args.mem, args.gpu,
                   args.num_nodes, args.time, args.partition, args.account, args.config)


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(log not found)"
    return "\n".join(lines[-n:])


def _report(spec: JobSpec, codes: dict[int, int], prog: str) -> int:
    failed = [i for i, c in sorted(codes.items()) if c != 0]
    if not failed:
        return 0
    first_log = Path(spec.expand(spec.log, failed[0]))
    sys.stderr.write(
        f"{prog}: {len(failed)} / {len(codes)} jobs failed: {spec.var or 'job'} {failed}; "
        f"first failing log: {first_log}\n--- tail of {first_log} ---\n{_tail(first_log)}\n---\n"
    )
    return 1


def _srun_command(cmd: str) -> str:
    """``cmd`` once per Slurm task, each with the variables torchrun sets for its processes (ranks,
    sizes, node rank; OMP_NUM_THREADS 1 unless set, as torchrun does with several processes per node)."""
    per_task = ('export RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID '
                'LOCAL_WORLD_SIZE=$SLURM_NTASKS_PER_NODE GROUP_RANK=$SLURM_NODEID ROLE_RANK=$SLURM_PROCID '
                'ROLE_WORLD_SIZE=$SLURM_NTASKS OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}; ' + cmd)
    return ('export MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1) '
            'MASTER_PORT=${MASTER_PORT:-29500}; '
            f"srun --kill-on-bad-exit=1 bash -c {shlex.quote('set -o pipefail; ' + per_task)}")


def alive_test(pid: int) -> str:
    """A bash condition that holds while process ``pid`` runs (a zombie, killed but not yet reaped
    by its parent, counts as gone)."""
    return f'{{ [ -r /proc/{pid}/stat ] && [[ "$(< /proc/{pid}/stat)" != *") Z "* ]]; }}'


def _wrapped_command(spec: JobSpec, index: int, log: Path, launcher: int | None = None) -> str:
    """A bash script that runs one job, writing header, output and footer into ``log``. With
    ``launcher`` (a pid), a watchdog stops the job's process group once that process is gone, so
    that a launcher killed by SIGKILL leaves no job behind (the job runs as a group leader)."""
    cmd = spec.expand(spec.command, index)
    if spec.num_nodes > 1:
        cmd = _srun_command(cmd)
    q = shlex.quote
    watchdog = "" if launcher is None else (
        f"( while {alive_test(launcher)}; do sleep 1; done; kill -TERM -- -$$ ) < /dev/null > /dev/null 2>&1 &\n"
        "watchdog=$!\n")
    return (
        f"exec >> {q(str(log))} 2>&1\n"
        f"export OMP_NUM_THREADS={spec.num_threads} MKL_NUM_THREADS={spec.num_threads}\n"
        f"echo {q('# ' + cmd)}\n"
        f"echo \"# Started at $(date)\"\n"
        f"start=$(date +%s)\n"
        f"{watchdog}"
        f"( set -o pipefail; {cmd}\n)\n"
        f"rc=$?\n"
        f"{'' if launcher is None else 'kill $watchdog 2> /dev/null' + chr(10)}"
        f"echo \"# Accounting: time=$(( $(date +%s) - start )) threads={spec.num_threads}\"\n"
        f"echo \"# Ended (code $rc) at $(date)\"\n"
        f"exit $rc\n"
    )


@contextlib.contextmanager
def _on_stop_signals(handler):
    """Within the block, SIGINT, SIGTERM and SIGHUP call ``handler(signum, frame)`` (the launcher
    stops its jobs instead of leaving them behind); the previous handlers come back afterwards."""
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def run_local(spec: JobSpec, prog: str = "run.sh") -> int:
    """Run the jobs here, at most ``spec.max_jobs_run`` at a time. Returns the exit status."""
    if spec.num_nodes > 1:
        sys.stderr.write(f"{prog}: --num-nodes {spec.num_nodes} needs Slurm (utils/slurm.sh, cmd_backend=slurm)\n")
        return 2

    running: dict[int, subprocess.Popen] = {}
    lock = threading.Lock()
    stopping: list[int] = []

    def one(index: int) -> int:
        if stopping:
            return 128 + stopping[0]
        log = Path(spec.expand(spec.log, index))
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        # its own process group, so that a signal to the launcher reaches the whole job (below)
        proc = subprocess.Popen(["bash", "-c", _wrapped_command(spec, index, log, launcher=os.getpid())],
                                start_new_session=True)
        with lock:
            running[index] = proc
        return proc.wait()

    def forward(signum, frame):  # SIGINT / SIGTERM / SIGHUP to the launcher: stop every job, start no new one
        stopping.append(signum)
        with lock:
            procs = list(running.values())
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signum)
                except ProcessLookupError:
                    pass

    with _on_stop_signals(forward):
        with ThreadPoolExecutor(max_workers=max(1, spec.max_jobs_run)) as pool:
            codes = dict(zip(spec.indices(), pool.map(one, spec.indices())))
    if stopping:
        sys.stderr.write(f"{prog}: stopped by signal {stopping[0]}; the jobs were sent it too\n")
        return 128 + stopping[0]
    return _report(spec, codes, prog)


def kaldi_slurm_options(spec: JobSpec) -> list[str]:
    """sbatch options from a Kaldi ``slurm.conf`` (the format of Kaldi's slurm.pl): the arguments of
    its ``command sbatch ...`` line, then for each of mem, num_threads, gpu, time and max_jobs_run
    (given on the command line, else the conf's ``default``), the ``option NAME=VALUE`` rule for
    that value, else the ``option NAME=*`` rule with ``$0`` replaced by the value."""
    command: list[str] = []
    exact: dict[tuple[str, str], list[str]] = {}
    star: dict[str, list[str]] = {}
    default: dict[str, str] = {}
    for n, raw in enumerate(Path(spec.config).read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = shlex.split(line)
        if words[0] == "command":
            if len(words) < 2 or Path(words[1]).name != "sbatch":
                raise ValueError(f"{spec.config}:{n}: expected 'command sbatch ...', got {raw.strip()!r}")
            command = words[2:]
        elif words[0] in ("option", "default") and len(words) >= 2 and "=" in words[1]:
            key, value = words[1].split("=", 1)
            if words[0] == "default":
                default[key] = value
            elif value == "*":
                star[key] = words[2:]
            else:
                exact[(key, value)] = words[2:]
        else:
            raise ValueError(f"{spec.config}:{n}: not a slurm.conf line (command / option / default): {raw.strip()!r}")
    given = {"mem": spec.mem, "num_threads": str(spec.num_threads) if spec.num_threads != 1 else None,
             "gpu": str(spec.gpu) if spec.gpu else None, "time": spec.time,
             "max_jobs_run": None}
    out = list(command)
    for key in ("mem", "num_threads", "gpu", "time", "max_jobs_run"):
        value = given[key] if given[key] is not None else default.get(key)
        if value is None:
            continue
        if (key, value) in exact:
            out += exact[(key, value)]
        elif key in star:
            out += [w.replace("$0", value) for w in star[key]]
    return out


def run_slurm(spec: JobSpec, prog: str = "slurm.sh", poll: float = 2.0) -> int:
    """Submit one Slurm job array (``sbatch --wait``) and collect each task's exit code."""
    first_log = Path(spec.expand(spec.log, spec.first))
    qdir = first_log.parent / "q"
    qdir.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(spec.log).name.replace(spec.var or "JOB", "X"))
    script = qdir / f"{name}.sh"
    cases = []
    for i in spec.indices():
        log = Path(spec.expand(spec.log, i)).resolve()
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        body = _wrapped_command(spec, i, log).replace("exit $rc\n", "")
        cases.append(f"{i})\n{body}echo $rc > {shlex.quote(str((qdir / f'{name}.{i}.rc').resolve()))}\nexit $rc\n;;")
        (qdir / f"{name}.{i}.rc").unlink(missing_ok=True)
    script.write_text(
        "#!/usr/bin/env bash\n"
        f"cd {shlex.quote(os.getcwd())}\n"
        'case "$SLURM_ARRAY_TASK_ID" in\n' + "\n".join(cases) + "\n*) echo bad task id >&2; exit 1;;\nesac\n"
    )
    script.chmod(0o755)
    job_name = f"{name}.{os.getpid()}"  # this launch's alone: a signal to the launcher cancels exactly its jobs
    sbatch = [
        "sbatch",
        "--wait",
        f"--job-name={job_name}",
        f"--array={spec.first}-{spec.last}%{spec.max_jobs_run}",
        f"--output={qdir.resolve() / (name + '.%a.out')}",
    ]
    if spec.config:
        try:
            sbatch = sbatch[:1] + kaldi_slurm_options(spec) + sbatch[1:]
        except (OSError, ValueError) as e:
            sys.stderr.write(f"{prog}: {e}\n")
            return 2
    else:
        sbatch.append(f"--cpus-per-task={spec.num_threads}")
        if spec.mem:
            sbatch.append(f"--mem={spec.mem}")
        if spec.gpu:
            sbatch.append(f"--gres=gpu:{spec.gpu}")
    for opt, value in (("--time", None if spec.config else spec.time),  # with a conf, its time rules apply
                       ("--partition", spec.partition), ("--account", spec.account)):
        if value:
            sbatch.append(f"{opt}={value}")
    if spec.num_nodes > 1:
        sbatch += [f"--nodes={spec.num_nodes}", f"--ntasks-per-node={max(1, spec.gpu)}"]
    stopping: list[int] = []

    def cancel(signum, frame):  # SIGINT / SIGTERM to the launcher: cancel the array, as a local job would stop
        stopping.append(signum)
        subprocess.run(["scancel", f"--name={job_name}"], capture_output=True)

    # a launcher killed by SIGKILL runs no handler: a watchdog of its own session cancels the array then
    watchdog = subprocess.Popen(
        ["bash", "-c", f"while {alive_test(os.getpid())}; do sleep 2; done; scancel --name={job_name}"],
        start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with _on_stop_signals(cancel):
            proc = subprocess.run(sbatch + [str(script)], capture_output=True, text=True)
    except FileNotFoundError:
        sys.stderr.write(f"{prog}: sbatch not found on PATH: is this a Slurm cluster? "
                         "Use utils/run.sh to run locally.\n")
        return 1
    finally:
        watchdog.kill()
        watchdog.wait()
    if stopping:
        sys.stderr.write(f"{prog}: stopped by signal {stopping[0]}; its Slurm jobs ({job_name}) were cancelled\n")
        return 128 + stopping[0]
    rc_files = {i: qdir / f"{name}.{i}.rc" for i in spec.indices()}
    if proc.returncode != 0 and not any(f.is_file() for f in rc_files.values()):  # no job ran: sbatch's word
        sys.stderr.write(f"{prog}: sbatch failed (exit {proc.returncode}), no job ran: "
                         f"{proc.stderr.strip() or '(sbatch printed nothing)'}\n")
        return 1
    codes = {i: int(f.read_text().strip()) if f.is_file() else 1 for i, f in rc_files.items()}
    if proc.returncode != 0 and all(c == 0 for c in codes.values()):
        sys.stderr.write(f"{prog}: sbatch failed ({proc.returncode}): {proc.stderr.strip()}\n")
        return 1
    return _report(spec, codes, prog)


BACKENDS = {"local": run_local, "slurm": run_slurm}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in BACKENDS:
        sys.stderr.write(f"usage: python -m espnet_distill.bin.launch {{{','.join(BACKENDS)}}} [options] [JOB=1:N] LOG "
                         "CMD ...\n")
        return 2
    backend = argv.pop(0)
    prog = {"local": "utils/run.sh", "slurm": "utils/slurm.sh"}[backend]
    spec = parse_args(argv, prog)
    return BACKENDS[backend](spec, prog)
