"""The Kaldi-style launchers (utils/run.sh and utils/slurm.sh)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args, cwd, env=None):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env)


def test_local_runs_all_jobs_with_logs(tmp_path):
    r = run([str(ROOT / "utils/run.sh"), "--max-jobs-run", "2", "JOB=1:4", "log/t.JOB.log",
             "echo", "job", "JOB", ">", "out.JOB.txt"], tmp_path)
    assert r.returncode == 0, r.stderr
    for i in range(1, 5):
        assert (tmp_path / f"out.{i}.txt").read_text() == f"job {i}\n"
        log = (tmp_path / f"log/t.{i}.log").read_text()
        assert log.startswith(f"# echo job {i} > out.{i}.txt")
        assert "# Ended (code 0)" in log


def test_local_failure_names_jobs_and_shows_log(tmp_path):
    r = run([str(ROOT / "utils/run.sh"), "JOB=1:3", "log/f.JOB.log",
             *"echo start JOB; [ JOB -eq 1 ] || { echo boom JOB >&2; exit 7; }".split()], tmp_path)
    assert r.returncode == 1
    assert "2 / 3 jobs failed: JOB [2, 3]" in r.stderr
    assert "log/f.2.log" in r.stderr
    assert "boom 2" in r.stderr
    assert "# Ended (code 7)" in (tmp_path / "log/f.3.log").read_text()


def test_pipe_failure_is_not_hidden(tmp_path):
    r = run([str(ROOT / "utils/run.sh"), "log/p.log", "false", "|", "cat"], tmp_path)
    assert r.returncode == 1


def test_log_must_contain_job_variable(tmp_path):
    r = run([str(ROOT / "utils/run.sh"), "JOB=1:2", "log/same.log", "true"], tmp_path)
    assert r.returncode == 2
    assert "must contain JOB" in r.stderr


FAKE_SBATCH = """#!/usr/bin/env bash
# A stand-in for Slurm's sbatch --wait --array=A-B%M: runs each array task here.
echo "$@" >> "$FAKE_SBATCH_CALLS"
script=${@: -1}
for a in "$@"; do case "$a" in --array=*) r=${a#--array=}; r=${r%%%*};; esac; done
rc=0
for i in $(seq ${r%-*} ${r#*-}); do SLURM_ARRAY_TASK_ID=$i bash "$script" || rc=1; done
exit $rc
"""


def fake_slurm(tmp_path) -> dict:
    """The environment of a run with FAKE_SBATCH as sbatch on PATH; its calls go to tmp_path/calls."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    (bindir / "sbatch").chmod(0o755)
    return dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_SBATCH_CALLS=str(tmp_path / "calls"))


def test_slurm_backend_with_fake_sbatch(tmp_path):
    env = fake_slurm(tmp_path)
    r = run([str(ROOT / "utils/slurm.sh"), "--mem", "2G", "--gpu", "1", "JOB=1:3", "log/s.JOB.log",
             *"echo hi JOB; [ JOB -ne 3 ]".split()], tmp_path, env)
    assert r.returncode == 1
    assert "1 / 3 jobs failed: JOB [3]" in r.stderr
    calls = (tmp_path / "calls").read_text()
    assert "--array=1-3" in calls
    assert "--mem=2G" in calls
    assert "--gres=gpu:1" in calls
    assert "--wait" in calls
    assert "hi 2" in (tmp_path / "log/s.2.log").read_text()


FAKE_SRUN = """#!/usr/bin/env bash
# A stand-in for srun in a 2-node x 2-task allocation: runs the 4 tasks here, in turn.
shift  # --kill-on-bad-exit=1
rc=0
for i in 0 1 2 3; do
    SLURM_PROCID=$i SLURM_NTASKS=4 SLURM_LOCALID=$((i % 2)) SLURM_NODEID=$((i / 2)) SLURM_NTASKS_PER_NODE=2 "$@" || rc=1
done
exit $rc
"""


def test_slurm_multi_node_starts_one_process_per_gpu(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN),
                       ("scontrol", "#!/usr/bin/env bash\nprintf 'node07\\nnode08\\n'\n")):
        (bindir / name).write_text(text)
        (bindir / name).chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", FAKE_SBATCH_CALLS=str(tmp_path / "calls"),
               SLURM_JOB_NODELIST="node[07-08]")
    r = run([str(ROOT / "utils/slurm.sh"), "--gpu", "2", "--num-nodes", "2", "log/train.log",
             *("echo rank $RANK of $WORLD_SIZE local $LOCAL_RANK of $LOCAL_WORLD_SIZE node $GROUP_RANK"
               " role $ROLE_RANK of $ROLE_WORLD_SIZE threads $OMP_NUM_THREADS"
               " master $MASTER_ADDR:$MASTER_PORT").split()],
            tmp_path, {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"})
    assert r.returncode == 0, r.stderr
    calls = (tmp_path / "calls").read_text()
    assert "--nodes=2" in calls
    assert "--ntasks-per-node=2" in calls
    assert "--gres=gpu:2" in calls
    log = (tmp_path / "log/train.log").read_text()
    for rank in range(4):
        assert (f"rank {rank} of 4 local {rank % 2} of 2 node {rank // 2} role {rank} of 4 threads 1 "
                "master node07:29500") in log  # every variable torchrun sets, LOCAL_WORLD_SIZE included
    r = run([str(ROOT / "utils/run.sh"), "--num-nodes", "2", "log/x.log", "true"], tmp_path)
    assert r.returncode == 2
    assert "needs Slurm" in r.stderr


def test_a_killed_launcher_stops_its_jobs(tmp_path):
    """`kill` of utils/run.sh (SIGTERM) reaches the running job instead of orphaning it."""
    import signal
    import time

    pidfile = tmp_path / "pid"
    launcher = subprocess.Popen([str(ROOT / "utils/run.sh"), str(tmp_path / "log"), "echo", "$BASHPID", ">",
                                 str(pidfile), ";", "exec", "sleep", "60"], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        if pidfile.is_file() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    job = int(pidfile.read_text())
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=20) == 128 + signal.SIGTERM
    assert "stopped by signal 15" in launcher.stderr.read()
    for _ in range(50):
        try:
            os.kill(job, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"job {job} still runs after its launcher was killed")


KALDI_SLURM_CONF = """# Kaldi's conf/slurm.conf format
command sbatch --export=PATH --ntasks-per-node=1
option time=* --time $0
option mem=* --mem-per-cpu $0
option mem=0          # do not add anything to qsub_opts
option num_threads=* --cpus-per-task $0
option num_threads=1 --cpus-per-task 1
option max_jobs_run=* # Do nothing
default gpu=0
option gpu=0 -p cpu
option gpu=* -p gpu --gres=gpu:$0
"""


def test_slurm_pl_with_kaldis_options_and_conf(tmp_path):
    env = fake_slurm(tmp_path)
    (tmp_path / "slurm.conf").write_text(KALDI_SLURM_CONF)
    r = run([str(ROOT / "utils/slurm.pl"), "--config", "slurm.conf", "--mem", "4G", "--num-threads", "2", "--gpu", "1",
             "--time", "2:00:00", "--account", "speech", "JOB=1:2", "log/k.JOB.log", "echo", "ok", "JOB"], tmp_path,
             env)
    assert r.returncode == 0, r.stderr
    call = (tmp_path / "calls").read_text().splitlines()[0]
    for want in ("--export=PATH", "--ntasks-per-node=1", "--mem-per-cpu 4G", "--cpus-per-task 2", "-p gpu",
                 "--gres=gpu:1", "--time 2:00:00", "--account=speech", "--array=1-2"):
        assert want in call, (want, call)
    assert "ok 2" in (tmp_path / "log/k.2.log").read_text()
    r = run([str(ROOT / "utils/slurm.pl"), "--config", "slurm.conf", "JOB=1:1", "log/c.JOB.log", "true"], tmp_path, env)
    assert r.returncode == 0
    assert "-p cpu" in (tmp_path / "calls").read_text().splitlines()[-1]  # default gpu=0
    (tmp_path / "bad.conf").write_text("queue all.q\n")
    r = run([str(ROOT / "utils/slurm.pl"), "--config", "bad.conf", "JOB=1:1", "log/b.JOB.log", "true"], tmp_path, env)
    assert r.returncode == 2
    assert "bad.conf:1: not a slurm.conf line" in r.stderr


def start_cancellable_slurm_launcher(tmp_path, **popen):
    """utils/slurm.sh over a fake sbatch that waits until the fake scancel writes $CANCELLED; returned
    once sbatch was called."""
    import time

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text('#!/usr/bin/env bash\necho "$@" > "$CALLS"\n'
                                   'for i in $(seq 300); do [ ! -f "$CANCELLED" ] || exit 1; sleep 0.1; done\n')
    (bindir / "scancel").write_text('#!/usr/bin/env bash\necho "$@" > "$CANCELLED"\n')
    for f in ("sbatch", "scancel"):
        (bindir / f).chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", CALLS=str(tmp_path / "calls"),
               CANCELLED=str(tmp_path / "cancelled"))
    launcher = subprocess.Popen([str(ROOT / "utils/slurm.sh"), "JOB=1:2", "log/w.JOB.log", "sleep", "60"], cwd=tmp_path,
                                env=env, **popen)
    for _ in range(100):
        if (tmp_path / "calls").is_file():
            break
        time.sleep(0.1)
    return launcher


def test_a_killed_slurm_launcher_cancels_its_jobs(tmp_path):
    import signal

    launcher = start_cancellable_slurm_launcher(tmp_path, stderr=subprocess.PIPE, text=True)
    launcher.send_signal(signal.SIGTERM)
    assert launcher.wait(timeout=20) == 128 + signal.SIGTERM
    name = next(a for a in (tmp_path / "calls").read_text().split() if a.startswith("--job-name="))[len("--job-name="):]
    assert (tmp_path / "cancelled").read_text().split() == [f"--name={name}"]
    assert name.endswith(f".{launcher.pid}")
    assert "were cancelled" in launcher.stderr.read()


def wait_for_pid_file(path: Path, timeout: float = 20.0) -> int:
    import time

    for _ in range(int(timeout * 10)):
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    pytest.fail(f"{path} was not written")


def gone_within(pid: int, seconds: float) -> bool:
    import time

    for _ in range(int(seconds * 10)):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_launcher_killed_by_sigkill_leaves_no_job_behind(tmp_path):
    """SIGKILL runs no handler in the launcher: the job's watchdog sees its launcher gone and stops it."""
    import signal

    pidfile = tmp_path / "pid"
    launcher = subprocess.Popen([str(ROOT / "utils/run.sh"), str(tmp_path / "log"), "echo", "$BASHPID", ">",
                                 str(pidfile), ";", "exec", "sleep", "60"])
    job = wait_for_pid_file(pidfile)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=20)
    assert gone_within(job, 10), f"job {job} still runs after its launcher was killed with SIGKILL"


def test_a_slurm_launcher_killed_by_sigkill_cancels_its_jobs(tmp_path):
    import signal
    import time

    launcher = start_cancellable_slurm_launcher(tmp_path)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=20)
    for _ in range(100):
        if (tmp_path / "cancelled").is_file():
            break
        time.sleep(0.1)
    assert (tmp_path / "cancelled").read_text().split() == [f"--name=w.X.log.{launcher.pid}"]


def test_sbatchs_own_error_is_shown(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "sbatch").write_text('#!/usr/bin/env bash\necho "sbatch: error: invalid partition specified: nope" >&2\n'
                                   'exit 1\n')
    (bindir / "sbatch").chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}")
    r = run([str(ROOT / "utils/slurm.sh"), "--partition", "nope", "JOB=1:2", "log/p.JOB.log", "true"], tmp_path, env)
    assert r.returncode == 1
    assert "no job ran: sbatch: error: invalid partition specified: nope" in r.stderr


def test_words_with_spaces_are_quoted_as_kaldi_does(tmp_path):
    r = run([str(ROOT / "utils/run.pl"), "log/q.log", "printf", "%s/", "two  spaces", 'say "hi"', "$HOME x",
             ">", "out.txt"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out.txt").read_text() == 'two  spaces/say "hi"/$HOME x/'.replace("$HOME", os.environ["HOME"])


def test_a_job_range_that_is_not_numbers_is_an_error(tmp_path):
    r = run([str(ROOT / "utils/run.sh"), "JOB=1:N", "log/x.JOB.log", "true"], tmp_path)
    assert r.returncode == 2
    assert "bad job range 'JOB=1:N'" in r.stderr
    assert not (tmp_path / "JOB=1:N").exists()


def test_a_single_job_index(tmp_path):
    r = run([str(ROOT / "utils/run.sh"), "JOB=3", "log/one.JOB.log", "echo", "job", "JOB"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "job 3" in (tmp_path / "log/one.3.log").read_text()
